// The cancel token of the network run on this thread (internal).
//
// Session's interface carries no token, so the pipeline sets the caller's
// token around a run (RunCancelScope) and a backend checks it between the
// units of a long run (time tiles, batches, layers): a cancelled request
// then frees its session within one layer instead of after the whole input.
#pragma once

#include <utility>

#include "voxprint/cancel.h"

namespace voxprint::backends {

inline thread_local CancelToken current_run_cancel;

// Sets this thread's run token for the scope's lifetime (a default token:
// none, as a batch that serves several callers needs).
class RunCancelScope {
 public:
  explicit RunCancelScope(CancelToken token)
      : previous_(std::exchange(current_run_cancel, std::move(token))) {}
  ~RunCancelScope() { current_run_cancel = std::move(previous_); }
  RunCancelScope(const RunCancelScope&) = delete;
  RunCancelScope& operator=(const RunCancelScope&) = delete;

 private:
  CancelToken previous_;
};

// Throws ErrorCode::kCancelled once this thread's run token is cancelled.
inline void ThrowIfRunCancelled() {
  current_run_cancel.ThrowIfCancelled("network run");
}

}  // namespace voxprint::backends
