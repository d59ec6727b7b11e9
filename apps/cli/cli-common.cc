#include "cli-common.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <thread>

#include "common/model-lookup.h"

namespace voxprint::cli {

int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return kExitUsage;
    case ErrorCode::kUnsupportedInput:
    case ErrorCode::kCorruptInput:
      return kExitBadAudio;
    case ErrorCode::kModelError:
      return kExitModel;
    case ErrorCode::kBackendUnavailable:
      return kExitDevice;
    case ErrorCode::kResourceLimit:
      return kExitLimit;
    case ErrorCode::kIoError:
      return kExitIo;
    case ErrorCode::kInternal:
      return kExitInternal;
    case ErrorCode::kCancelled:
      return kExitCancelled;
    case ErrorCode::kNotFound:
      return kExitNotFound;
    case ErrorCode::kAlreadyExists:
      return kExitUsage;
  }
  return kExitInternal;
}

namespace {

// Length of the valid UTF-8 sequence at text[i] (2 to 4 bytes), 0 when the
// bytes there are not one, or are a C1 control (U+0080..U+009F), which some
// terminals obey like ESC.
size_t Utf8SequenceAt(const std::string& text, size_t i) {
  const auto byte = [&](size_t k) {
    return static_cast<unsigned char>(text[i + k]);
  };
  const unsigned char lead = byte(0);
  size_t length = 0;
  uint32_t code = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    code = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    code = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    code = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(k) & 0x3f);
  }
  const bool overlong =
      (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
  const bool surrogate = code >= 0xd800 && code <= 0xdfff;
  if (overlong || surrogate || code > 0x10ffff || code <= 0x9f) return 0;
  return length;
}

}  // namespace

std::string Printable(const std::string& text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7f) {
      if (byte == '\\') out += '\\';  // so that "\\n" stays unambiguous
      out += text[i++];
    } else if (const size_t length = Utf8SequenceAt(text, i); length > 0) {
      out.append(text, i, length);
      i += length;
    } else {
      ++i;
      if (byte == '\n') {
        out += "\\n";
      } else if (byte == '\r') {
        out += "\\r";
      } else if (byte == '\t') {
        out += "\\t";
      } else {
        out += "\\x";
        out += kHex[byte >> 4];
        out += kHex[byte & 0xf];
      }
    }
  }
  return out;
}

void PrintError(const std::string& message) {
  std::cerr << "voxprint: error: " << Printable(message) << std::endl;
}

void PrintWarnings(const std::string& input,
                   const std::vector<ResultWarning>& warnings) {
  for (const ResultWarning& warning : warnings)
    std::cerr << "voxprint: warning: "
              << Printable(input + ": " + warning.message) << std::endl;
}

namespace {

// What the signal handler touches: lock-free atomics only.
CancelToken interrupt_token;
std::atomic<int> interrupts{0};

extern "C" void OnInterrupt(int) {
  if (interrupts.fetch_add(1) > 0) ::_exit(kExitCancelled);
  interrupt_token.Cancel();
}

}  // namespace

CancelToken CancelOnInterrupt() {
  static_assert(std::atomic<bool>::is_always_lock_free &&
                std::atomic<int>::is_always_lock_free);
  interrupt_token = CancelToken::Create();
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  return interrupt_token;
}

void ModelFlags::AddTo(CLI::App& command) {
  command.add_option("--model", model_path,
                     "Model file: pyannote pytorch_model.bin, WeSpeaker "
                     "avg_model.pt or .onnx (default: $VOXPRINT_MODEL, then "
                     "~/.cache/voxprint/pytorch_model.bin, then download)");
  command.add_option("--device", device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str();
  command
      .add_option(
          "--threads", threads,
          "Compute threads, 0 (all cores) to " + std::to_string(kMaxThreads))
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command
      .add_option("--precision", precision,
                  "fp32 (reference parity); opt-in and less exact: bf16 or "
                  "mixed (cpu; faster only with AMX) or tf32 (cuda)")
      ->check(CLI::IsMember({"fp32", "bf16", "mixed", "tf32"}))
      ->capture_default_str();
}

std::unique_ptr<Extractor> ModelFlags::MakeExtractor(
    bool quiet, int jobs, bool model_checksum) const {
  if (threads < 0 || threads > kMaxThreads)
    throw Error(ErrorCode::kInvalidArgument,
                "--threads " + std::to_string(threads) +
                    " is out of range: it must be 0 (all cores) to " +
                    std::to_string(kMaxThreads));
  ExtractorOptions options;
  options.model_checksum = model_checksum;
  options.model_path = apps::ResolveModelPath(
      model_path, quiet ? nullptr : +[](const std::string& line) {
        std::cerr << "voxprint: " << Printable(line) << std::endl;
      });
  options.device = device;
  options.backend.num_threads = threads;
  if (jobs > 1) {
    const int total =
        threads > 0 ? threads
                    : static_cast<int>(std::thread::hardware_concurrency());
    options.backend.num_threads = std::max(1, total / jobs);
    options.max_parallel_runs = std::max(options.max_parallel_runs, jobs);
  }
  options.backend.precision = precision;
  auto extractor = std::make_unique<Extractor>(options);
  if (!quiet && !extractor->DeviceChoice().empty())
    std::cerr << "voxprint: " << Printable(extractor->DeviceChoice())
              << std::endl;
  return extractor;
}

}  // namespace voxprint::cli
