#include "work-pool.h"

#include <algorithm>

namespace voxprint::server {

void WorkPool::Slot::Release() {
  if (!released_.exchange(true)) pool_->ReleaseOne();
}

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

std::shared_ptr<WorkPool::Slot> WorkPool::TryReserve() {
  std::lock_guard<std::mutex> lock(mutex_);
  // Counting running jobs too means an idle worker always takes a job,
  // even with a queue capacity of 0.
  const int capacity = static_cast<int>(threads_.size()) + queue_capacity_;
  if (stopping_ || taken_ >= capacity) return nullptr;
  ++taken_;
  return std::shared_ptr<Slot>(new Slot(this));
}

void WorkPool::ReleaseOne() {
  std::lock_guard<std::mutex> lock(mutex_);
  --taken_;
}

void WorkPool::Submit(std::shared_ptr<Slot> slot, std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back({std::move(slot), std::move(job)});
  }
  wake_.notify_one();
}

bool WorkPool::TrySubmit(std::function<void()> job) {
  std::shared_ptr<Slot> slot = TryReserve();
  if (!slot) return false;
  Submit(std::move(slot), std::move(job));
  return true;
}

int WorkPool::InFlight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return taken_;
}

void WorkPool::WorkerLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job.run();
    } catch (...) {
      // Jobs report their own errors; this only keeps the worker alive.
    }
    // The job's function may hold the last other copy of the slot: dropping
    // both here releases the place.
    job.run = nullptr;
    if (job.slot) job.slot->Release();
  }
}

}  // namespace voxprint::server
