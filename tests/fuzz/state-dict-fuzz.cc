// Fuzz target: a checkpoint's pickle, with everything around it made valid.
// The input is the data.pkl of a torch.save archive; the target reads which
// storages it refers to, writes a zip holding it and a storage of exactly
// the claimed size for each, and loads that through the model loader. So
// mutations of the pickle reach what lies behind a valid archive, which the
// zip's checksums keep the checkpoint target from reaching: tensor views
// (sizes, strides, offsets, dtypes) against their storages, the mapping of
// the state dict onto the ResNet, architecture detection, BatchNorm folding
// and shape validation. Every failure must be a voxprint::Error.
#include <zip.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "model/model-file.h"
#include "model/pickle.h"
#include "voxprint/error.h"

namespace {

namespace pickle = voxprint::model::pickle;

// Storages are filled with this byte: finite, small and non-zero in every
// float dtype (0x3c3c3c3c is 0.0115f, 0x3c3c is 1.06 in float16).
constexpr uint8_t kFillByte = 0x3c;
// Pickles claiming more storage than this are skipped: copying megabytes
// into each archive would slow the search down, not widen it (the stub
// models' storages are 50 KB; the kit's full-size pickles are the pickle
// target's seeds).
constexpr uint64_t kMaxStorageBytes = uint64_t{8} << 20;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "state-dict-fuzz: %s\n", what);
  std::abort();
}

// A torch.save archive: archive/data.pkl, then archive/data/<key> per
// storage. Stored uncompressed, which torch.save also does.
std::vector<uint8_t> BuildArchive(
    std::span<const uint8_t> pickle_bytes,
    const std::map<std::string, uint64_t>& storage_bytes) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* buffer = zip_source_buffer_create(nullptr, 0, 0, &error);
  if (!buffer) Fail("zip_source_buffer_create");
  zip_source_keep(buffer);
  zip_t* archive = zip_open_from_source(buffer, ZIP_TRUNCATE, &error);
  if (!archive) Fail("zip_open_from_source");

  std::vector<std::vector<uint8_t>> contents;  // alive until zip_close
  contents.reserve(storage_bytes.size());
  auto add = [&](const std::string& name, const uint8_t* data, size_t size) {
    zip_source_t* source = zip_source_buffer(archive, data, size, 0);
    const zip_int64_t index =
        source ? zip_file_add(archive, name.c_str(), source, ZIP_FL_OVERWRITE)
               : -1;
    if (index < 0) {
      zip_source_free(source);
      return false;
    }
    zip_set_file_compression(archive, static_cast<zip_uint64_t>(index),
                             ZIP_CM_STORE, 0);
    return true;
  };
  bool ok = add("archive/data.pkl", pickle_bytes.data(), pickle_bytes.size());
  for (const auto& [key, size] : storage_bytes) {
    contents.emplace_back(size, kFillByte);
    // Keys with characters a zip name cannot hold: the archive goes without
    // that storage, and the loader must refuse it.
    add("archive/data/" + key, contents.back().data(), contents.back().size());
  }
  if (!ok || zip_close(archive) != 0) {
    zip_discard(archive);
    zip_source_free(buffer);
    return {};
  }

  std::vector<uint8_t> bytes;
  zip_stat_t stat;
  if (zip_source_stat(buffer, &stat) == 0 && zip_source_open(buffer) == 0) {
    bytes.resize(stat.size);
    const zip_int64_t read = zip_source_read(buffer, bytes.data(), stat.size);
    bytes.resize(read > 0 ? static_cast<size_t>(read) : 0);
    zip_source_close(buffer);
  }
  zip_source_free(buffer);
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> pickle_bytes(data, size);
  pickle::PickleResult result;
  try {
    result = pickle::Unpickle(pickle_bytes, "fuzz-input (data.pkl)");
  } catch (const voxprint::Error&) {
    return -1;  // the pickle target's business
  }

  // Each storage as large as the pickle claims (the largest claim per key).
  std::map<std::string, uint64_t> storage_bytes;
  uint64_t total = 0;
  for (const auto& value : result.arena) {
    if (!value->tensor) continue;
    const pickle::TensorRef& tensor = *value->tensor;
    const uint64_t element = pickle::ScalarSize(tensor.dtype);
    if (tensor.storage_numel < 0 ||
        static_cast<uint64_t>(tensor.storage_numel) >
            kMaxStorageBytes / element)
      return 0;
    uint64_t& bytes = storage_bytes[tensor.storage_key];
    const uint64_t claimed =
        static_cast<uint64_t>(tensor.storage_numel) * element;
    if (claimed > bytes) {
      total += claimed - bytes;
      bytes = claimed;
    }
    if (total > kMaxStorageBytes) return 0;
  }

  const std::vector<uint8_t> archive =
      BuildArchive(pickle_bytes, storage_bytes);
  if (archive.empty()) return 0;
  voxprint::model::LoadOptions options;
  options.checksum = false;
  try {
    voxprint::model::LoadModelBytes(archive, "fuzz-input.pt", options);
  } catch (const voxprint::Error&) {
  }
  return 0;
}
