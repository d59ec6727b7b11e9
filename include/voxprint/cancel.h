// Cooperative cancellation: a caller (a server whose request timed out or
// whose client went away, a process asked to stop) raises a flag, and the
// work that carries a copy of the token stops at its next check with
// ErrorCode::kCancelled. Checks sit between units of work that take at most
// a fraction of a second (a decoded packet, a batch of windows, a layer of a
// long tile), so a cancelled job frees its thread promptly.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "voxprint/error.h"

namespace voxprint {

class CancelToken {
 public:
  // A token that is never cancelled (what callers get by default).
  CancelToken() = default;
  // A live token; its copies share one flag.
  static CancelToken Create() {
    CancelToken token;
    token.flag_ = std::make_shared<std::atomic<bool>>(false);
    return token;
  }

  // Thread-safe; no effect on a default token.
  void Cancel() const {
    if (flag_) flag_->store(true, std::memory_order_relaxed);
  }
  bool Cancelled() const {
    return flag_ && flag_->load(std::memory_order_relaxed);
  }
  // Throws Error(kCancelled, "<what>: cancelled") once cancelled.
  void ThrowIfCancelled(const std::string& what) const {
    if (Cancelled()) throw Error(ErrorCode::kCancelled, what + ": cancelled");
  }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

}  // namespace voxprint
