// Items 0..count-1 made in order on a helper thread, a bounded amount ahead
// of their consumer: a many-file job decodes the next files and computes
// their features while the network runs on the ones before.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace voxprint::pipeline {

template <typename Item>
class Prefetcher {
 public:
  // `make(i)` makes item i; `cost(item)` is what it holds (feature frames,
  // say). The helper stops making items while those not yet taken by Next()
  // cost `budget` or more.
  Prefetcher(size_t count, std::function<Item(size_t)> make,
             std::function<int64_t(const Item&)> cost, int64_t budget)
      : count_(count),
        make_(std::move(make)),
        cost_(std::move(cost)),
        budget_(budget) {
    try {
      helper_ = std::thread([this] { MakeAll(); });
    } catch (const std::system_error&) {
      // No thread to be had: Next() makes each item itself.
    }
  }
  ~Prefetcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    changed_.notify_all();
    if (helper_.joinable()) helper_.join();
  }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next item in order (at most `count` calls). Rethrows what make()
  // threw for it; the helper makes nothing after such an item.
  Item Next() {
    if (!helper_.joinable()) return make_(taken_++);
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !ready_.empty(); });
    Entry entry = std::move(ready_.front());
    ready_.pop_front();
    queued_cost_ -= entry.cost;
    ++taken_;
    lock.unlock();
    changed_.notify_all();
    if (entry.failure) std::rethrow_exception(entry.failure);
    return std::move(entry.item);
  }

 private:
  struct Entry {
    Item item{};
    int64_t cost = 0;
    std::exception_ptr failure;
  };

  void MakeAll() {
    for (size_t i = 0; i < count_; ++i) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock,
                      [this] { return stopped_ || queued_cost_ < budget_; });
        if (stopped_) return;
      }
      Entry entry;
      try {
        entry.item = make_(i);
        entry.cost = cost_(entry.item);
      } catch (...) {
        entry.failure = std::current_exception();
      }
      const bool failed = entry.failure != nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        queued_cost_ += entry.cost;
        ready_.push_back(std::move(entry));
      }
      changed_.notify_all();
      if (failed) return;
    }
  }

  const size_t count_;
  const std::function<Item(size_t)> make_;
  const std::function<int64_t(const Item&)> cost_;
  const int64_t budget_;
  size_t taken_ = 0;  // by Next()
  std::thread helper_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Entry> ready_;
  int64_t queued_cost_ = 0;
  bool stopped_ = false;
};

}  // namespace voxprint::pipeline
