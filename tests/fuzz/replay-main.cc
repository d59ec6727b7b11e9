// The main() of a fuzz target in a normal build (without libFuzzer): runs
// LLVMFuzzerTestOneInput once over each file named on the command line, or
// over every file of each folder named there, so that the seeds and every
// input that once broke something stay tested in the ordinary and the
// sanitizer test suites.
//
//   fuzz-audio -timeout=10 tests/fuzz/seeds/audio tests/fuzz/regressions/audio
//
// A crash fails the run with the sanitizer's report after the name of the
// input being replayed; so does an input that takes longer than -timeout=N
// seconds (libFuzzer's flag; N times kSanitizerSlowdown in a sanitizer
// build), and a path that does not exist, so that a moved seed folder cannot
// turn the test into one that checks nothing.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc,
                                                          char*** argv);

namespace {

namespace fs = std::filesystem;

// Sanitizers make code 2-10x slower; -timeout is meant for optimized builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr double kSanitizerSlowdown = 5.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr double kSanitizerSlowdown = 5.0;
#else
constexpr double kSanitizerSlowdown = 1.0;
#endif
#else
constexpr double kSanitizerSlowdown = 1.0;
#endif

// The files to replay: each file argument, and each folder's regular files
// (recursively, in name order, hidden files skipped).
bool CollectInputs(const std::vector<std::string>& arguments,
                   std::vector<fs::path>* inputs) {
  for (const std::string& argument : arguments) {
    std::error_code error;
    const fs::file_status status = fs::status(argument, error);
    if (fs::is_regular_file(status)) {
      inputs->emplace_back(argument);
    } else if (fs::is_directory(status)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::recursive_directory_iterator(argument)) {
        if (entry.is_regular_file() &&
            entry.path().filename().string().rfind('.', 0) != 0)
          found.push_back(entry.path());
      }
      std::sort(found.begin(), found.end());
      inputs->insert(inputs->end(), found.begin(), found.end());
    } else {
      std::fprintf(stderr, "replay: %s: no such file or folder\n",
                   argument.c_str());
      return false;
    }
  }
  return true;
}

bool ReadBytes(const fs::path& path, std::vector<uint8_t>* bytes) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return false;
  bytes->assign(std::istreambuf_iterator<char>(file),
                std::istreambuf_iterator<char>());
  return !file.bad();
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  double timeout_s = 0;  // 0: no limit
  std::vector<std::string> arguments;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument.rfind("-timeout=", 0) == 0) {
      timeout_s = std::atof(argument.c_str() + 9) * kSanitizerSlowdown;
    } else if (argument.rfind('-', 0) == 0) {
      std::fprintf(stderr, "replay: unknown option %s\n", argument.c_str());
      return 2;
    } else {
      arguments.push_back(argument);
    }
  }
  if (arguments.empty()) {
    std::fprintf(stderr, "usage: %s [-timeout=SECONDS] FILE_OR_FOLDER...\n",
                 argv[0]);
    return 2;
  }
  std::vector<fs::path> inputs;
  if (!CollectInputs(arguments, &inputs)) return 2;

  for (const fs::path& path : inputs) {
    std::vector<uint8_t> bytes;
    if (!ReadBytes(path, &bytes)) {
      std::fprintf(stderr, "replay: %s: cannot read\n", path.c_str());
      return 2;
    }
    // Printed (and flushed) first: a crash report then follows its input.
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", path.c_str(),
                 bytes.size());
    std::fflush(stderr);
    const auto start = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::fprintf(stderr, "replay:   done in %.3f s\n", elapsed_s);
    if (timeout_s > 0 && elapsed_s > timeout_s) {
      std::fprintf(stderr, "replay: %s took %.1f s, over the limit of %.0f s\n",
                   path.c_str(), elapsed_s, timeout_s);
      return 1;
    }
  }
  std::fprintf(stderr, "replay: %zu inputs, no crash\n", inputs.size());
  return 0;
}
