#include "work-pool.h"

#include <algorithm>

namespace voxprint::server {

WorkPool::WorkPool(int workers, int queue_capacity)
    : queue_capacity_(std::max(0, queue_capacity)) {
  const int count = std::max(1, workers);
  threads_.reserve(count);
  for (int i = 0; i < count; ++i)
    threads_.emplace_back([this] { WorkerLoop(); });
}

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

bool WorkPool::TrySubmit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Counting running jobs too means an idle worker always takes a job,
    // even with a queue capacity of 0.
    const int capacity = static_cast<int>(threads_.size()) + queue_capacity_;
    if (stopping_ || running_ + static_cast<int>(jobs_.size()) >= capacity)
      return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

int WorkPool::InFlight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_ + static_cast<int>(jobs_.size());
}

void WorkPool::WorkerLoop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    try {
      job();
    } catch (...) {
      // Jobs report their own errors; this only keeps the worker alive.
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
    }
  }
}

}  // namespace voxprint::server
