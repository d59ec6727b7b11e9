// A streaming form of Resample() (internal): the same output samples, bit
// for bit, computed block by block with bounded memory.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace voxprint::audio {

struct SincKernel;

// Not thread-safe; one per stream. Throws voxprint::Error like Resample().
class StreamingResampler {
 public:
  StreamingResampler(int from_hz, int to_hz);
  ~StreamingResampler();
  StreamingResampler(const StreamingResampler&) = delete;
  StreamingResampler& operator=(const StreamingResampler&) = delete;

  // Appends to *out every output sample that the input so far determines.
  void Push(std::span<const float> input, std::vector<float>* out);
  // End of input: appends the remaining output samples. Further calls to
  // Push or Finish are refused (kInvalidArgument).
  void Finish(std::vector<float>* out);

  int64_t input_samples() const { return total_in_; }

 private:
  void Emit(bool finished, std::vector<float>* out);

  bool copy_ = false;  // same rate
  std::shared_ptr<const SincKernel> kernel_;
  int64_t reach_ = 0;  // one past the last input of frame 0, over all phases
  int64_t lead_ = 0;   // first input of frame 0, over all phases (may be < 0)
  // Resample() sums with fused multiply-adds when the padded input is long
  // (torch's oneDNN path); the choice waits until the length is known to
  // reach that threshold, or the input ends.
  int64_t fused_min_input_ = 0;
  bool decided_ = false;
  bool fused_ = false;
  bool finished_ = false;
  std::vector<float> buffer_;  // input from absolute index buffer_start_
  int64_t buffer_start_ = 0;
  int64_t total_in_ = 0;
  int64_t next_frame_ = 0;  // next output frame (new_rate outputs each)
};

}  // namespace voxprint::audio
