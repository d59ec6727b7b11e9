// Concurrent single-input network runs coalesced into batches (the server's
// concurrent requests on a GPU, where one batch costs far less than its
// inputs one by one).
//
// No caller waits for others to arrive: the first caller to find no batch
// running leads one over everything queued at that moment (oldest first, up
// to a frame budget) through Session::RunMixed, while later callers queue for
// the next batch. Alone, a caller runs at once as before; under load, batches
// form by themselves. A failing batch fails each of its callers with the
// error; the next batch is unaffected.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <vector>

#include "pipeline/session-pool.h"
#include "voxprint/cancel.h"

namespace voxprint::pipeline {

class RequestBatcher {
 public:
  // `sessions` must outlive this. A batch takes queued inputs while their
  // frames stay within `max_batch_frames` (it takes one input at least).
  RequestBatcher(SessionPool& sessions, int embedding_dim,
                 int64_t max_batch_frames);

  // features [frames, bins], mean subtracted -> [embedding_dim]; blocks
  // until its batch ran. Throws what the batch's run threw, or kCancelled
  // when `cancel` is raised while the input still waits in the queue (once
  // its batch runs, the batch finishes: it serves other callers too).
  std::vector<float> Run(std::span<const float> features, int64_t frames,
                         const CancelToken& cancel = {});

  // Batches run so far (tests, diagnostics).
  struct Stats {
    int64_t batches = 0;
    int64_t inputs = 0;
    int largest = 0;  // inputs of the largest batch
  };
  Stats Totals() const;

 private:
  struct Pending;
  // Runs one batch from the queue's front; `lock` is held on entry and exit
  // but released while the network runs.
  void Lead(std::unique_lock<std::mutex>& lock);

  SessionPool& sessions_;
  const int embedding_dim_;
  const int64_t max_batch_frames_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Pending*> queue_;
  bool leading_ = false;  // a batch is being run
  Stats stats_;
};

}  // namespace voxprint::pipeline
