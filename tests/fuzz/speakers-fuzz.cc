// Fuzz target: the speakers store's parsers of untrusted input. The first
// byte picks one: 0 a .npy cohort (ParseNpyMatrix), 1 a trial list
// (ParseTrials), 2 a speaker name (ValidateSpeakerName), 3 a voiceprints
// export (SpeakerStore::Import into a store in a temporary folder). Every
// failure must be a voxprint::Error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace {

voxprint::SpeakerStore& Store() {
  static const std::unique_ptr<voxprint::SpeakerStore> store = [] {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("voxprint-speakers-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    voxprint::SpeakerStoreOptions options;
    options.location = (dir / "speakers.db").string();
    options.model_sha256 = std::string(64, 'f');
    options.embedding_dim = 4;
    std::filesystem::remove(options.location);
    return voxprint::SpeakerStore::Open(options);
  }();
  return *store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const uint8_t> rest(data + 1, size - 1);
  const std::string text(rest.begin(), rest.end());
  try {
    switch (data[0] % 4) {
      case 0:
        voxprint::ParseNpyMatrix(rest, "fuzz-input.npy");
        break;
      case 1:
        voxprint::ParseTrials(text, "fuzz-input.txt");
        break;
      case 2:
        voxprint::ValidateSpeakerName(text);
        break;
      case 3:
        Store().Import(text);
        break;
    }
  } catch (const voxprint::Error&) {
  }
  return 0;
}
