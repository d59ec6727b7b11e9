#include "pipeline/request-batcher.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

#include "backends/run-cancel.h"

namespace voxprint::pipeline {

struct RequestBatcher::Pending {
  std::span<const float> features;
  int64_t frames = 0;
  std::vector<float> embedding;
  std::exception_ptr error;
  bool done = false;
};

RequestBatcher::RequestBatcher(SessionPool& sessions, int embedding_dim,
                               int64_t max_batch_frames)
    : sessions_(sessions),
      embedding_dim_(embedding_dim),
      max_batch_frames_(max_batch_frames) {}

std::vector<float> RequestBatcher::Run(std::span<const float> features,
                                       int64_t frames,
                                       const CancelToken& cancel) {
  // How often a waiting caller looks at its token: a batch can take seconds.
  constexpr auto kCancelPoll = std::chrono::milliseconds(20);
  Pending me;
  me.features = features;
  me.frames = frames;
  std::unique_lock lock(mutex_);
  cancel.ThrowIfCancelled("waiting for the network");
  queue_.push_back(&me);
  while (!me.done) {
    const auto queued = std::find(queue_.begin(), queue_.end(), &me);
    if (queued != queue_.end() && cancel.Cancelled()) {
      queue_.erase(queued);
      cancel.ThrowIfCancelled("waiting for the network");
    }
    if (leading_) {
      changed_.wait_for(lock, kCancelPoll);
      continue;
    }
    try {
      Lead(lock);
    } catch (...) {  // no memory to form a batch: leave the queue
      if (!me.done) queue_.erase(std::find(queue_.begin(), queue_.end(), &me));
      throw;
    }
  }
  if (me.error) std::rethrow_exception(me.error);
  return std::move(me.embedding);
}

void RequestBatcher::Lead(std::unique_lock<std::mutex>& lock) {
  std::vector<Pending*> batch;
  batch.reserve(queue_.size());  // may throw: nothing taken yet
  int64_t frames = 0;
  while (!queue_.empty() && (batch.empty() || frames + queue_.front()->frames <=
                                                  max_batch_frames_)) {
    frames += queue_.front()->frames;
    batch.push_back(queue_.front());
    queue_.pop_front();
  }
  leading_ = true;
  ++stats_.batches;
  stats_.inputs += static_cast<int64_t>(batch.size());
  stats_.largest = std::max(stats_.largest, static_cast<int>(batch.size()));
  lock.unlock();

  std::vector<float> embeddings;
  std::exception_ptr error;
  try {
    std::vector<Session::Input> inputs;
    inputs.reserve(batch.size());
    for (const Pending* pending : batch)
      inputs.push_back({pending->features, pending->frames});
    // The batch serves callers other than its leader: no one caller's
    // token may stop it.
    const backends::RunCancelScope scope{CancelToken()};
    auto session = sessions_.Borrow();
    embeddings = session->RunMixed(inputs);
  } catch (...) {
    error = std::current_exception();
  }

  lock.lock();
  for (size_t i = 0; i < batch.size(); ++i) {
    Pending& pending = *batch[i];
    pending.error = error;
    if (!error) {
      try {
        const auto first = embeddings.begin() + i * embedding_dim_;
        pending.embedding.assign(first, first + embedding_dim_);
      } catch (...) {
        pending.error = std::current_exception();
      }
    }
    pending.done = true;
  }
  leading_ = false;
  // Callers of this batch return; one still queued leads the next.
  changed_.notify_all();
}

RequestBatcher::Stats RequestBatcher::Totals() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace voxprint::pipeline
