// Uninitialised, aligned scratch memory that only grows (64-byte aligned;
// from 1 MiB up, a mapping of its own that grows in place where it can).
// A buffer made with huge_pages asks to sit on transparent huge pages
// instead: for large, short-lived, fully written buffers (a model file read
// at start-up: a dozen page faults instead of thousands, which start-up
// latency feels). Not for long-lived working memory: the 2 MiB granularity
// costs resident memory there (measured +80 MB on a 30 s run).
#pragma once

#include <cstddef>
#include <cstdint>

namespace voxprint::memory {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t bytes, bool huge_pages = false)
      : huge_pages_(huge_pages) {
    Reserve(bytes);
  }
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
  void Release() noexcept;

  void* data_ = nullptr;
  size_t capacity_ = 0;
  bool huge_pages_ = false;
  bool mapped_ = false;  // mmap'ed (else malloc'ed)
};

}  // namespace voxprint::memory
