#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "vad/silero-network.h"
#include "vad/silero-weights.h"
#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint {
namespace {

// The real file is 2.2 MB; anything far larger is not it.
constexpr uintmax_t kMaxModelBytes = uintmax_t{64} << 20;

std::vector<uint8_t> ReadModelFile(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error))
    throw Error(ErrorCode::kModelError,
                path + ": Silero VAD model file not found");
  if (std::filesystem::is_directory(path, error))
    throw Error(ErrorCode::kModelError,
                path + ": is a directory, not the Silero VAD model file");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(
      std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file)
    throw Error(ErrorCode::kIoError, path + ": cannot open the VAD model");
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  for (;;) {
    const size_t got = std::fread(buffer, 1, sizeof buffer, file.get());
    bytes.insert(bytes.end(), buffer, buffer + got);
    if (bytes.size() > kMaxModelBytes)
      throw Error(ErrorCode::kModelError,
                  path + ": over 64 MB, not a Silero VAD model");
    if (got < sizeof buffer) break;
  }
  if (std::ferror(file.get()))
    throw Error(ErrorCode::kIoError, path + ": read error on the VAD model");
  return bytes;
}

// 0: one per core.
int CheckedThreads(int num_threads) {
  if (num_threads < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "VAD num_threads must be 0 (one per core) or more, got " +
                    std::to_string(num_threads));
  if (num_threads == 0)
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return num_threads;
}

}  // namespace

struct VoiceActivityDetector::Model {
  int num_threads;
  std::string source;
  vad::SileroNetwork network;
};

VoiceActivityDetector::VoiceActivityDetector(const std::string& model_path,
                                             int num_threads)
    // The thread count is checked before the file is read.
    : VoiceActivityDetector(
          (CheckedThreads(num_threads), ReadModelFile(model_path)), model_path,
          num_threads) {}

VoiceActivityDetector::VoiceActivityDetector(
    std::span<const uint8_t> model_bytes, const std::string& name,
    int num_threads)
    : model_(std::make_shared<const Model>(Model{
          CheckedThreads(num_threads), name,
          vad::SileroNetwork(vad::ReadSileroWeights(model_bytes, name))})) {}

VoiceActivityDetector::~VoiceActivityDetector() = default;
VoiceActivityDetector::VoiceActivityDetector(VoiceActivityDetector&&) noexcept =
    default;
VoiceActivityDetector& VoiceActivityDetector::operator=(
    VoiceActivityDetector&&) noexcept = default;

std::vector<float> VoiceActivityDetector::Probabilities(
    std::span<const float> samples_16k, const CancelToken& cancel) const {
  VOXPRINT_CHECK(model_ != nullptr, "VoiceActivityDetector used after move");
  return model_->network.Run(samples_16k, cancel, model_->num_threads);
}

std::vector<SpeechSegment> VoiceActivityDetector::SpeechSegments(
    std::span<const float> samples_16k, const VadOptions& options,
    const CancelToken& cancel) const {
  options.Validate();
  return SegmentsFromProbabilities(Probabilities(samples_16k, cancel),
                                   static_cast<int64_t>(samples_16k.size()),
                                   options);
}

struct VoiceActivityDetector::ProbabilityStream::Impl {
  std::shared_ptr<const Model> model;  // keeps the network alive
  vad::SileroNetwork::Stream stream;
};

VoiceActivityDetector::ProbabilityStream::ProbabilityStream(
    const VoiceActivityDetector& detector) {
  VOXPRINT_CHECK(detector.model_ != nullptr,
                 "VoiceActivityDetector used after move");
  impl_.reset(new Impl{detector.model_, vad::SileroNetwork::Stream(
                                            detector.model_->network,
                                            detector.model_->num_threads)});
}
VoiceActivityDetector::ProbabilityStream::~ProbabilityStream() = default;

void VoiceActivityDetector::ProbabilityStream::Push(
    std::span<const float> samples_16k, std::vector<float>* out) {
  impl_->stream.Push(samples_16k, out);
}

void VoiceActivityDetector::ProbabilityStream::Finish(std::vector<float>* out) {
  impl_->stream.Finish(out);
}

const std::string& VoiceActivityDetector::source() const {
  VOXPRINT_CHECK(model_ != nullptr, "VoiceActivityDetector used after move");
  return model_->source;
}

int VoiceActivityDetector::num_threads() const {
  VOXPRINT_CHECK(model_ != nullptr, "VoiceActivityDetector used after move");
  return model_->num_threads;
}

}  // namespace voxprint
