#include "cli-common.h"

#include <algorithm>
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
  }
  return kExitInternal;
}

void PrintError(const std::string& message) {
  std::cerr << "voxprint: error: " << message << std::endl;
}

void ModelFlags::AddTo(CLI::App& command) {
  command.add_option("--model", model_path,
                     "Model file: pyannote pytorch_model.bin, WeSpeaker "
                     "avg_model.pt or .onnx (default: $VOXPRINT_MODEL, then "
                     "~/.cache/voxprint/pytorch_model.bin, then download)");
  command.add_option("--device", device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str();
  command.add_option("--threads", threads, "Compute threads (0: all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command
      .add_option("--precision", precision,
                  "fp32 (reference parity); opt-in, faster and less exact: "
                  "bf16 (cpu) or tf32 (cuda)")
      ->check(CLI::IsMember({"fp32", "bf16", "tf32"}))
      ->capture_default_str();
}

std::unique_ptr<Extractor> ModelFlags::MakeExtractor(
    bool quiet, int jobs, bool model_checksum) const {
  ExtractorOptions options;
  options.model_checksum = model_checksum;
  options.model_path = apps::ResolveModelPath(
      model_path, quiet ? nullptr : +[](const std::string& line) {
        std::cerr << "voxprint: " << line << std::endl;
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
    std::cerr << "voxprint: " << extractor->DeviceChoice() << std::endl;
  return extractor;
}

}  // namespace voxprint::cli
