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
constexpr size_t kPage = 4096;
// Below this, malloc's pools serve better than a mapping of its own.
constexpr size_t kMapAtLeast = size_t{1} << 20;
// AddressSanitizer checks the bounds of malloc'ed blocks, not of mappings:
// its builds keep every buffer on malloc.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMapLargeBuffers = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kMapLargeBuffers = false;
#else
constexpr bool kMapLargeBuffers = true;
#endif
#else
constexpr bool kMapLargeBuffers = true;
#endif

size_t RoundUp(size_t bytes, size_t unit) {
  return (bytes + unit - 1) / unit * unit;
}

}  // namespace

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      capacity_(std::exchange(other.capacity_, 0)),
      huge_pages_(other.huge_pages_),
      mapped_(std::exchange(other.mapped_, false)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    huge_pages_ = other.huge_pages_;
    mapped_ = std::exchange(other.mapped_, false);
  }
  return *this;
}

LargeBuffer::~LargeBuffer() { Release(); }

void LargeBuffer::Release() noexcept {
  if (mapped_)
    munmap(data_, capacity_);
  else
    std::free(data_);
  data_ = nullptr;
  capacity_ = 0;
  mapped_ = false;
}

void LargeBuffer::Reserve(size_t bytes) {
  if (bytes <= capacity_ && data_ != nullptr) return;
  const bool huge = huge_pages_ && bytes >= kHugePage;
  const size_t alignment = huge ? kHugePage : kCacheLine;
  if (bytes > SIZE_MAX - kHugePage)
    throw Error(ErrorCode::kResourceLimit,
                "cannot allocate " + std::to_string(bytes) + " bytes");
  if (kMapLargeBuffers && !huge && bytes >= kMapAtLeast) {
    // Growing a mapping keeps the pages already touched, so a buffer that
    // grows step by step (a server meeting ever longer inputs) faults in
    // only the new part instead of all of it again.
    const size_t rounded = RoundUp(bytes, kPage);
    void* fresh = mapped_ ? mremap(data_, capacity_, rounded, MREMAP_MAYMOVE)
                          : mmap(nullptr, rounded, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED)
      throw Error(ErrorCode::kResourceLimit,
                  "cannot allocate " + std::to_string(rounded) + " bytes");
    if (!mapped_) Release();
    data_ = fresh;
    capacity_ = rounded;
    mapped_ = true;
    return;
  }
  const size_t rounded = RoundUp(bytes > 0 ? bytes : 1, alignment);
  void* fresh = std::aligned_alloc(alignment, rounded);
  if (fresh == nullptr)
    throw Error(ErrorCode::kResourceLimit,
                "cannot allocate " + std::to_string(rounded) + " bytes");
  // Only a hint: where the kernel refuses, small pages serve as before.
  if (huge) madvise(fresh, rounded, MADV_HUGEPAGE);
  Release();
  data_ = fresh;
  capacity_ = rounded;
}

}  // namespace voxprint::memory
