// LargeBuffer: grows only, keeps its alignment promises, moves cleanly.
#include "memory/large-buffer.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstring>
#include <utility>

namespace voxprint::memory {
namespace {

uintptr_t Address(const LargeBuffer& buffer) {
  return reinterpret_cast<uintptr_t>(buffer.data());
}

TEST(LargeBuffer, SmallBuffersAreCacheLineAligned) {
  LargeBuffer buffer(100);
  ASSERT_NE(buffer.data(), nullptr);
  EXPECT_EQ(Address(buffer) % 64, 0u);
  EXPECT_GE(buffer.capacity(), 100u);
  std::memset(buffer.data(), 0xAB, 100);  // writable (ASan checks the bounds)
}

TEST(LargeBuffer, HugePageBuffersSitOnHugePageBoundaries) {
  const size_t bytes = (size_t{5} << 20) + 3;
  LargeBuffer buffer(bytes, /*huge_pages=*/true);
  EXPECT_EQ(Address(buffer) % (size_t{2} << 20), 0u);
  EXPECT_EQ(buffer.capacity() % (size_t{2} << 20), 0u);
  EXPECT_GE(buffer.capacity(), bytes);
  buffer.bytes()[bytes - 1] = 7;
  EXPECT_EQ(buffer.bytes()[bytes - 1], 7);
}

TEST(LargeBuffer, OthersStayCacheLineAligned) {
  LargeBuffer buffer(size_t{5} << 20);
  EXPECT_EQ(Address(buffer) % 64, 0u);
  EXPECT_EQ(buffer.capacity(), size_t{5} << 20);
}

TEST(LargeBuffer, GrowsOnlyWhenAskedForMore) {
  LargeBuffer buffer(1000);
  void* first = buffer.data();
  buffer.Reserve(10);
  EXPECT_EQ(buffer.data(), first);
  buffer.Reserve(buffer.capacity() + 1);
  EXPECT_GT(buffer.capacity(), 1000u);
}

TEST(LargeBuffer, MovesLeaveTheSourceEmpty) {
  LargeBuffer a(4096);
  void* data = a.data();
  LargeBuffer b(std::move(a));
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.capacity(), 0u);
  LargeBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.data(), data);
  EXPECT_EQ(b.data(), nullptr);  // NOLINT(bugprone-use-after-move)
}

long MinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

TEST(LargeBuffer, GrowingKeepsThePagesAlreadyTouched) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer builds keep buffers on malloc, to check "
                  "their bounds";
#endif
  constexpr size_t kPage = 4096;
  const size_t half = size_t{16} << 20;
  LargeBuffer buffer(1000);  // from malloc's pool to a mapping of its own
  buffer.Reserve(half);
  std::memset(buffer.data(), 1, half);
  const long before = MinorFaults();
  buffer.Reserve(2 * half);
  ASSERT_GE(buffer.capacity(), 2 * half);
  EXPECT_EQ(Address(buffer) % 64, 0u);
  std::memset(buffer.data(), 2, 2 * half);  // all of it writable
  // Only the new half faults in (with small pages: half / 4096 faults; with
  // transparent huge pages, fewer), not the whole buffer again.
  EXPECT_LE(MinorFaults() - before, static_cast<long>(half / kPage) * 5 / 4);
  LargeBuffer moved(std::move(buffer));
  EXPECT_EQ(moved.bytes()[2 * half - 1], 2);
}

}  // namespace
}  // namespace voxprint::memory
