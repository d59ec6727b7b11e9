// A fixed set of worker threads fed by a bounded queue: the server's only
// place where inference runs. Submitting never blocks: when every worker is
// busy and the queue is full the job is refused, and the caller answers 503.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace voxprint::server {

class WorkPool {
 public:
  // `workers` >= 1 threads; at most `queue_capacity` >= 0 jobs wait for one.
  WorkPool(int workers, int queue_capacity);
  // Runs the jobs already accepted, then joins the threads.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `job` unless workers + queue are all taken (then returns false
  // and `job` is dropped). A job must not throw; one that does is caught and
  // ignored so that a worker never dies.
  bool TrySubmit(std::function<void()> job);

  int workers() const { return static_cast<int>(threads_.size()); }
  int queue_capacity() const { return queue_capacity_; }
  // Jobs running plus jobs waiting, at this instant.
  int InFlight() const;

 private:
  void WorkerLoop();

  const int queue_capacity_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  int running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace voxprint::server
