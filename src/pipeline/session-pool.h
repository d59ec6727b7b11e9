// A bounded pool of backend sessions: a Session is single-threaded, so each
// concurrent call borrows one, and at most `capacity` exist at once.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "voxprint/backend.h"

namespace voxprint::pipeline {

class SessionPool {
 public:
  SessionPool(std::shared_ptr<const PreparedModel> model, int capacity);

  // RAII loan: returns the session to the pool when destroyed.
  class Lease {
   public:
    Lease(SessionPool* pool, std::unique_ptr<Session> session)
        : pool_(pool), session_(std::move(session)) {}
    Lease(Lease&&) = default;
    ~Lease();
    Session& operator*() { return *session_; }
    Session* operator->() { return session_.get(); }

   private:
    SessionPool* pool_;
    std::unique_ptr<Session> session_;
  };

  // Blocks while all `capacity` sessions are lent out.
  Lease Borrow();

  // Destroys the sessions not lent out, with their scratch memory and
  // compiled shapes; later borrows make new ones. Lent sessions are kept.
  void ReleaseIdle();

 private:
  void Return(std::unique_ptr<Session> session);

  std::shared_ptr<const PreparedModel> model_;
  const int capacity_;
  int created_ = 0;
  std::vector<std::unique_ptr<Session>> idle_;
  std::mutex mutex_;
  std::condition_variable returned_;
};

}  // namespace voxprint::pipeline
