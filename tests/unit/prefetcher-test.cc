// pipeline::Prefetcher: items in order, made a bounded amount ahead, failures
// rethrown in their turn, and a consumer that stops early never hangs.
#include "pipeline/prefetcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace voxprint::pipeline {
namespace {

TEST(Prefetcher, ItemsComeInOrder) {
  Prefetcher<std::string> items(
      50, [](size_t i) { return std::to_string(i); },
      [](const std::string&) { return int64_t{1}; }, 7);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(items.Next(), std::to_string(i));
}

// Waits (up to 10 s) until `count` reaches `target`, then a little more, so
// that a helper going past its budget would have had the time to.
void SettleAt(const std::atomic<size_t>& count, size_t target) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (count.load() < target && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

TEST(Prefetcher, StaysWithinItsBudget) {
  std::atomic<size_t> made{0};
  Prefetcher<int> items(
      20,
      [&](size_t i) {
        ++made;
        return static_cast<int>(i);
      },
      [](int) { return int64_t{10}; }, 30);
  // Three items (30) fill the budget; the helper then waits for Next().
  SettleAt(made, 3);
  EXPECT_EQ(made.load(), 3u);
  EXPECT_EQ(items.Next(), 0);
  SettleAt(made, 4);
  EXPECT_EQ(made.load(), 4u);
}

TEST(Prefetcher, AFailureIsRethrownInItsTurn) {
  Prefetcher<int> items(
      10,
      [](size_t i) {
        if (i == 3) throw std::runtime_error("item 3");
        return static_cast<int>(i);
      },
      [](int) { return int64_t{1}; }, 100);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(items.Next(), i);
  EXPECT_THROW(items.Next(), std::runtime_error);
}

TEST(Prefetcher, StoppingEarlyDoesNotHang) {
  std::atomic<size_t> made{0};
  {
    Prefetcher<int> items(
        1000,
        [&](size_t i) {
          ++made;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          return static_cast<int>(i);
        },
        [](int) { return int64_t{1}; }, 5);
    EXPECT_EQ(items.Next(), 0);
  }  // the helper is stopped and joined here
  EXPECT_LT(made.load(), 1000u);
}

}  // namespace
}  // namespace voxprint::pipeline
