// Uninitialised, aligned scratch memory that only grows. Buffers of 2 MiB
// and more are asked to sit on transparent huge pages: a model file or a
// layer's activations then cost a few page faults instead of thousands
// (start-up latency feels each one) and fewer TLB misses when read.
#pragma once

#include <cstddef>
#include <cstdint>

namespace voxprint::memory {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t bytes) { Reserve(bytes); }
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;
  ~LargeBuffer();

  // Makes room for `bytes` (contents are not kept). Throws
  // ErrorCode::kResourceLimit when the memory is not there.
  void Reserve(size_t bytes);
  void* data() const { return data_; }
  uint8_t* bytes() const { return static_cast<uint8_t*>(data_); }
  float* floats() const { return static_cast<float*>(data_); }
  size_t capacity() const { return capacity_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace voxprint::memory
