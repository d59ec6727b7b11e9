#include "memory/large-buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "voxprint/error.h"

namespace voxprint::memory {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kCacheLine = 64;

size_t RoundUp(size_t bytes, size_t unit) {
  return (bytes + unit - 1) / unit * unit;
}

}  // namespace

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      capacity_(std::exchange(other.capacity_, 0)),
      huge_pages_(other.huge_pages_) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    huge_pages_ = other.huge_pages_;
  }
  return *this;
}

LargeBuffer::~LargeBuffer() { std::free(data_); }

void LargeBuffer::Reserve(size_t bytes) {
  if (bytes <= capacity_ && data_ != nullptr) return;
  const bool huge = huge_pages_ && bytes >= kHugePage;
  const size_t alignment = huge ? kHugePage : kCacheLine;
  if (bytes > SIZE_MAX - alignment)
    throw Error(ErrorCode::kResourceLimit,
                "cannot allocate " + std::to_string(bytes) + " bytes");
  const size_t rounded = RoundUp(bytes > 0 ? bytes : 1, alignment);
  void* fresh = std::aligned_alloc(alignment, rounded);
  if (fresh == nullptr)
    throw Error(ErrorCode::kResourceLimit,
                "cannot allocate " + std::to_string(rounded) + " bytes");
  // Only a hint: where the kernel refuses, small pages serve as before.
  if (huge) madvise(fresh, rounded, MADV_HUGEPAGE);
  std::free(data_);
  data_ = fresh;
  capacity_ = rounded;
}

}  // namespace voxprint::memory
