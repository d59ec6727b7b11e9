// pipeline::SessionPool: sessions are made on demand up to the capacity and
// reused; ReleaseIdle destroys the idle ones (their memory) and never a lent
// one, and the pool then makes new ones again.
#include "pipeline/session-pool.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "voxprint/backend.h"

namespace voxprint {
namespace {

// Counts the sessions made and those alive.
struct SessionCounts {
  int made = 0;
  int alive = 0;
};

class CountedSession final : public Session {
 public:
  explicit CountedSession(SessionCounts* counts) : counts_(counts) {
    ++counts_->made;
    ++counts_->alive;
  }
  ~CountedSession() override { --counts_->alive; }
  std::vector<float> Run(std::span<const float>, int batch, int64_t) override {
    return std::vector<float>(static_cast<size_t>(batch), 1.0f);
  }

 private:
  SessionCounts* counts_;
};

class CountedModel final : public PreparedModel {
 public:
  explicit CountedModel(SessionCounts* counts) : counts_(counts) {}
  std::unique_ptr<Session> NewSession() const override {
    return std::make_unique<CountedSession>(counts_);
  }
  int EmbeddingDim() const override { return 1; }

 private:
  SessionCounts* counts_;
};

TEST(SessionPool, ReusesAReturnedSession) {
  SessionCounts counts;
  pipeline::SessionPool pool(std::make_shared<CountedModel>(&counts), 2);
  { auto lease = pool.Borrow(); }
  { auto lease = pool.Borrow(); }
  EXPECT_EQ(counts.made, 1);
  EXPECT_EQ(counts.alive, 1);
}

TEST(SessionPool, ReleaseIdleFreesIdleSessionsAndKeepsLentOnes) {
  SessionCounts counts;
  pipeline::SessionPool pool(std::make_shared<CountedModel>(&counts), 2);
  auto lent = pool.Borrow();
  { auto returned = pool.Borrow(); }
  ASSERT_EQ(counts.alive, 2);

  pool.ReleaseIdle();
  EXPECT_EQ(counts.alive, 1);
  EXPECT_EQ(lent->Run({}, 3, 0).size(), 3u);  // the lent one still works

  // The freed place counts again: a second borrow makes a new session
  // while the first is still lent (capacity 2, so it must not block).
  { auto fresh = pool.Borrow(); }
  EXPECT_EQ(counts.made, 3);
  EXPECT_EQ(counts.alive, 2);
}

TEST(SessionPool, AReleasedPoolMakesSessionsAgain) {
  SessionCounts counts;
  pipeline::SessionPool pool(std::make_shared<CountedModel>(&counts), 1);
  { auto lease = pool.Borrow(); }
  pool.ReleaseIdle();
  EXPECT_EQ(counts.alive, 0);
  {
    // Capacity 1: blocks forever if the released session still counted.
    auto lease = pool.Borrow();
    EXPECT_EQ(counts.alive, 1);
  }
  EXPECT_EQ(counts.made, 2);
}

}  // namespace
}  // namespace voxprint
