#include "pipeline/session-pool.h"

#include <algorithm>

namespace voxprint::pipeline {

SessionPool::SessionPool(std::shared_ptr<const PreparedModel> model,
                         int capacity)
    : model_(std::move(model)), capacity_(std::max(1, capacity)) {}

SessionPool::Lease::~Lease() {
  if (session_) pool_->Return(std::move(session_));
}

SessionPool::Lease SessionPool::Borrow() {
  std::unique_lock lock(mutex_);
  returned_.wait(lock, [&] { return !idle_.empty() || created_ < capacity_; });
  if (!idle_.empty()) {
    std::unique_ptr<Session> session = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(session));
  }
  ++created_;
  lock.unlock();
  try {
    return Lease(this, model_->NewSession());
  } catch (...) {
    std::lock_guard relock(mutex_);
    --created_;
    returned_.notify_one();
    throw;
  }
}

void SessionPool::ReleaseIdle() {
  std::vector<std::unique_ptr<Session>> released;
  {
    std::lock_guard lock(mutex_);
    released.swap(idle_);
    created_ -= static_cast<int>(released.size());
  }
  returned_.notify_all();  // a waiter may now create a session
  // `released` is destroyed here, outside the lock.
}

void SessionPool::Return(std::unique_ptr<Session> session) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(session));
  }
  returned_.notify_one();
}

}  // namespace voxprint::pipeline
