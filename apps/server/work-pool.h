// A fixed set of worker threads fed by a bounded queue: the server's only
// place where inference runs. Admission is a Slot, taken before the request
// body is read (so a full server refuses from the headers alone) and held
// until the request's job completes. Taking a slot never blocks: when every
// worker is busy and the queue is full there is none, and the caller answers
// 503.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace voxprint::server {

class WorkPool {
 public:
  // One of the workers + queue places. Released by Release() or when the
  // last copy of its shared_ptr goes; must not outlive its pool.
  class Slot {
   public:
    ~Slot() { Release(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    // Idempotent. A job calls it before it publishes its result, so that a
    // client that sends its next request on seeing the reply finds the
    // place free again.
    void Release();

   private:
    friend class WorkPool;
    explicit Slot(WorkPool* pool) : pool_(pool) {}
    WorkPool* const pool_;
    std::atomic<bool> released_{false};
  };

  // `workers` >= 1 threads; at most `queue_capacity` >= 0 jobs wait for one.
  WorkPool(int workers, int queue_capacity);
  // Runs the jobs already submitted, then joins the threads.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // A free place, or nullptr when workers + queue are all taken.
  std::shared_ptr<Slot> TryReserve();
  // Queues `job` on the place `slot` holds (never refused); the slot is
  // released when the job returns, if the job has not released it before.
  // A job must not throw; one that does is caught and ignored so that a
  // worker never dies.
  void Submit(std::shared_ptr<Slot> slot, std::function<void()> job);
  // TryReserve + Submit: false (and `job` dropped) when no place is free.
  bool TrySubmit(std::function<void()> job);

  int workers() const { return static_cast<int>(threads_.size()); }
  int queue_capacity() const { return queue_capacity_; }
  // Places taken (jobs running or waiting, and requests still uploading the
  // body of one), at this instant.
  int InFlight() const;

 private:
  struct Job {
    std::shared_ptr<Slot> slot;
    std::function<void()> run;
  };
  void WorkerLoop();
  void ReleaseOne();

  const int queue_capacity_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  int taken_ = 0;  // slots not yet released
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace voxprint::server
