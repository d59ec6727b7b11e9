// The SQLite speakers store: names, duplicates, unknown names, another
// model's store, corrupt and newer files, persistence, two handles on one
// file, export/import, and a real SIGKILL in the middle of an enrollment.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;

constexpr int kDim = 8;
const std::string kModelA(64, 'a');
const std::string kModelB(64, 'b');

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("voxprint-store-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "speakers.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SpeakerStore> Open(const std::string& model = kModelA) {
    SpeakerStoreOptions options;
    options.location = path_;
    options.model_sha256 = model;
    options.embedding_dim = kDim;
    return SpeakerStore::Open(options);
  }
  std::string FileBytes() const {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
  }
  fs::path dir_;
  std::string path_;
};

// A unit vector along axis `axis` (plus a small tilt along the next axis).
std::vector<float> Axis(int axis, float tilt = 0.0f) {
  std::vector<float> v(kDim, 0.0f);
  v[axis % kDim] = 1.0f;
  v[(axis + 1) % kDim] = tilt;
  return v;
}

Enrollment Enroll(std::vector<float> embedding,
                  const std::string& source = "a.wav") {
  Enrollment e;
  e.source = source;
  e.audio_sha256 = std::string(64, '0');
  e.duration_s = 4.0;
  e.speech_s = 3.5;
  e.embedding = std::move(embedding);
  return e;
}

template <typename F>
ErrorCode CodeOf(F&& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& error) {
    if (message) *message = error.what();
    return error.code();
  }
  ADD_FAILURE() << "no error thrown";
  return ErrorCode::kInternal;
}

TEST_F(StoreTest, EnrollsListsAndIdentifiesOpenSet) {
  auto store = Open();
  const std::vector<Enrollment> alice = {Enroll(Axis(0)),
                                         Enroll(Axis(0, 0.5f))};
  const SpeakerInfo info = store->Enroll("alice", alice, R"({"team":"a"})");
  EXPECT_EQ(info.enrollments, 2);
  EXPECT_DOUBLE_EQ(info.speech_s, 7.0);
  EXPECT_EQ(info.metadata_json, R"({"team":"a"})");
  store->Enroll("bob", std::vector{Enroll(Axis(2))});
  store->Enroll("carol", std::vector{Enroll(Axis(4))});
  ASSERT_EQ(store->List().size(), 3u);

  // The voiceprint is the normalised mean of normalised embeddings:
  // (e0 + (e0 + 0.5 e1)/|.|) / |.|.
  const double n1 = std::sqrt(1.25);
  const double x = 1 + 1 / n1, y = 0.5 / n1, norm = std::hypot(x, y);
  Identification id = store->Identify(Axis(0), 2, 0.5);
  ASSERT_EQ(id.candidates.size(), 2u);
  EXPECT_EQ(id.candidates[0].name, "alice");
  EXPECT_NEAR(id.candidates[0].score, x / norm, 1e-6);
  EXPECT_FALSE(id.unknown);
  EXPECT_EQ(id.speaker, "alice");

  // Orthogonal to everyone: every score is 0, below the threshold.
  id = store->Identify(Axis(6), 5, 0.5);
  EXPECT_EQ(id.candidates.size(), 3u);
  EXPECT_TRUE(id.unknown);
  EXPECT_EQ(id.speaker, "");

  const Verification v = store->Verify("bob", Axis(2), 0.7);
  EXPECT_NEAR(v.score, 1.0, 1e-6);
  EXPECT_TRUE(v.accepted);
  EXPECT_FALSE(store->Verify("bob", Axis(0), 0.7).accepted);
}

TEST_F(StoreTest, BadNamesAreRefusedWithTheReason) {
  auto store = Open();
  const std::vector<Enrollment> one = {Enroll(Axis(0))};
  std::string message;
  for (const std::string& name :
       {std::string(""), std::string(129, 'x'), std::string("a\nb"),
        std::string("tab\there"), std::string("\xff\xfe"),
        std::string("\xc0\xaf"), std::string("del\x7f")}) {
    EXPECT_EQ(CodeOf([&] { store->Enroll(name, one); }, &message),
              ErrorCode::kInvalidArgument)
        << name;
    EXPECT_NE(message.find("bad speaker name"), std::string::npos) << message;
  }
  // 128 characters of two bytes each are fine; so is any script.
  std::string long_name;
  for (int i = 0; i < 128; ++i) long_name += "\xc3\xa9";
  store->Enroll(long_name, one);
  store->Enroll("Zoë 李", one);
  EXPECT_EQ(store->Size(), 2u);
  EXPECT_EQ(CodeOf([&] { store->Enroll("x", one, "[1,2]"); }),
            ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, DuplicatesAndUnknownNames) {
  auto store = Open();
  const std::vector<Enrollment> one = {Enroll(Axis(0))};
  store->Enroll("alice", one);
  store->Enroll("bob", std::vector{Enroll(Axis(1))});
  EXPECT_EQ(CodeOf([&] { store->Enroll("alice", one); }),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store->Get("alice").enrollments, 1);
  store->Enroll("alice", std::vector{Enroll(Axis(3))}, "", /*append=*/true);
  EXPECT_EQ(store->Get("alice").enrollments, 2);

  EXPECT_EQ(CodeOf([&] { store->Remove("nobody"); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { store->Rename("nobody", "x"); }),
            ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { store->Verify("nobody", Axis(0), 0.5); }),
            ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { store->Rename("alice", "bob"); }),
            ErrorCode::kAlreadyExists);

  store->Rename("alice", "alicia");
  EXPECT_EQ(store->Identify(Axis(0), 1, 0.1).candidates[0].name, "alicia");
  store->Remove("bob");
  EXPECT_EQ(store->Size(), 1u);
  EXPECT_EQ(CodeOf([&] { store->Verify("bob", Axis(1), 0.5); }),
            ErrorCode::kNotFound);
  // Wrong sizes and NaN never reach the file.
  EXPECT_EQ(CodeOf([&] {
              store->Enroll("c", std::vector{Enroll(std::vector<float>(3, 1))});
            }),
            ErrorCode::kInvalidArgument);
  std::vector<float> nan = Axis(0);
  nan[1] = NAN;
  EXPECT_EQ(CodeOf([&] { store->Enroll("c", std::vector{Enroll(nan)}); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { store->Identify(nan, 1, 0.5); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { store->Identify(Axis(0), 0, 0.5); }),
            ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, PersistsAndTwoHandlesSeeEachOther) {
  {
    auto store = Open();
    store->Enroll("alice", std::vector{Enroll(Axis(0))});
  }
  auto first = Open();
  auto second = Open();
  EXPECT_EQ(first->Identify(Axis(0), 1, 0.5).speaker, "alice");
  second->Enroll("bob", std::vector{Enroll(Axis(1))});
  // `first` reads the change from the file before it scores.
  EXPECT_EQ(first->Identify(Axis(1), 1, 0.5).speaker, "bob");
  first->Remove("bob");
  EXPECT_TRUE(second->Identify(Axis(1), 1, 0.5).unknown);
  second->Rename("alice", "alicia");
  EXPECT_EQ(first->Verify("alicia", Axis(0), 0.5).name, "alicia");
}

TEST_F(StoreTest, AnotherModelsStoreIsRefusedNamingBothChecksums) {
  Open()->Enroll("alice", std::vector{Enroll(Axis(0))});
  const std::string before = FileBytes();
  std::string message;
  EXPECT_EQ(CodeOf([&] { Open(kModelB); }, &message), ErrorCode::kModelError);
  EXPECT_NE(message.find(kModelA), std::string::npos) << message;
  EXPECT_NE(message.find(kModelB), std::string::npos) << message;
  EXPECT_EQ(FileBytes(), before);
  EXPECT_EQ(Open()->Identify(Axis(0), 1, 0.5).speaker, "alice");
}

TEST_F(StoreTest, CorruptAndForeignFilesAreRefusedAndKept) {
  {
    std::ofstream out(path_, std::ios::binary);
    out << std::string(8192, 'z');
  }
  std::string message;
  EXPECT_EQ(CodeOf([&] { Open(); }, &message), ErrorCode::kIoError);
  EXPECT_NE(message.find(path_), std::string::npos) << message;
  EXPECT_NE(message.find("untouched"), std::string::npos) << message;
  EXPECT_EQ(FileBytes(), std::string(8192, 'z'));

  // A SQLite database of something else.
  fs::remove(path_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE notes(x); INSERT INTO notes VALUES (1)",
               nullptr, nullptr, nullptr);
  sqlite3_close(db);
  const std::string foreign = FileBytes();
  EXPECT_EQ(CodeOf([&] { Open(); }, &message), ErrorCode::kIoError);
  EXPECT_NE(message.find("not a voxprint speakers store"), std::string::npos)
      << message;
  EXPECT_EQ(FileBytes(), foreign);

  // A store whose pages were damaged after it was written.
  fs::remove(path_);
  {
    auto store = Open();
    for (int i = 0; i < 200; ++i)
      store->Enroll("speaker " + std::to_string(i),
                    std::vector{Enroll(Axis(i, 0.1f * (i % 7)))});
  }
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096 * 3);
    const std::string junk(4096 * 4, '\x5a');
    file.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const std::string damaged = FileBytes();
  EXPECT_EQ(CodeOf([&] { Open(); }, &message), ErrorCode::kIoError);
  EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
  EXPECT_EQ(FileBytes(), damaged);
}

TEST_F(StoreTest, NewerSchemaIsRefusedAndNeverRewritten) {
  Open()->Enroll("alice", std::vector{Enroll(Axis(0))});
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "PRAGMA user_version = 7", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  const std::string before = FileBytes();
  std::string message;
  EXPECT_EQ(CodeOf([&] { Open(); }, &message), ErrorCode::kIoError);
  EXPECT_NE(message.find("newer voxprint (store schema 7"), std::string::npos)
      << message;
  EXPECT_EQ(FileBytes(), before);
}

TEST_F(StoreTest, ExportAndImportCheckTheModel) {
  auto store = Open();
  store->Enroll("alice", std::vector{Enroll(Axis(0)), Enroll(Axis(1))},
                R"({"id":7})");
  store->Enroll("bob", std::vector{Enroll(Axis(3))});
  const std::string document = store->Export();

  const std::string other = path_;
  path_ = (dir_ / "other.db").string();
  auto copy = Open();
  EXPECT_EQ(copy->Import(document), 2u);
  EXPECT_EQ(copy->Get("alice").enrollments, 2);
  EXPECT_EQ(copy->Get("alice").metadata_json, R"({"id":7})");
  EXPECT_NEAR(copy->Verify("alice", Axis(0), 0.5).score,
              store->Verify("alice", Axis(0), 0.5).score, 1e-7);
  // Again: the names exist, and nothing is added.
  EXPECT_EQ(CodeOf([&] { copy->Import(document); }), ErrorCode::kAlreadyExists);
  EXPECT_EQ(copy->Size(), 2u);

  path_ = (dir_ / "model-b.db").string();
  auto wrong = Open(kModelB);
  std::string message;
  EXPECT_EQ(CodeOf([&] { wrong->Import(document); }, &message),
            ErrorCode::kModelError);
  EXPECT_NE(message.find(kModelA), std::string::npos);
  EXPECT_EQ(wrong->Size(), 0u);
  EXPECT_EQ(CodeOf([&] { wrong->Import("{\"format\": 3}"); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { wrong->Import("not json"); }),
            ErrorCode::kInvalidArgument);
}

// SIGKILL while a large enrollment is being written: the store is what it
// was before that enrollment, and still opens.
TEST_F(StoreTest, SigkillDuringAnEnrollmentLeavesTheStoreAsBefore) {
  {
    auto store = Open();
    store->Enroll("alice", std::vector{Enroll(Axis(0))});
    store->Enroll("bob", std::vector{Enroll(Axis(1))});
  }
  const fs::path wal = path_ + "-wal";
  const auto wal_size = [&] {
    std::error_code error;
    const auto size = fs::file_size(wal, error);
    return error ? uintmax_t{0} : size;
  };
  const uintmax_t wal_before = wal_size();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // 200,000 enrollments in one transaction: seconds of writing.
    try {
      auto store = Open();
      std::vector<Enrollment> many;
      for (int i = 0; i < 200000; ++i)
        many.push_back(Enroll(Axis(i, 0.01f * (i % 100)), std::to_string(i)));
      store->Enroll("mallory", many);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  // Kill it once the transaction has written a few megabytes.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (wal_size() < wal_before + (4u << 20) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child finished before the kill";
  EXPECT_GE(wal_size(), wal_before + (4u << 20));

  auto store = Open();
  EXPECT_EQ(store->Size(), 2u);
  EXPECT_EQ(CodeOf([&] { store->Get("mallory"); }), ErrorCode::kNotFound);
  EXPECT_EQ(store->Identify(Axis(1), 1, 0.5).speaker, "bob");
  store->Enroll("carol", std::vector{Enroll(Axis(2))});
  EXPECT_EQ(store->Size(), 3u);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* check = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &check, nullptr);
  ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)),
               "ok");
  sqlite3_finalize(check);
  sqlite3_close(db);
}

}  // namespace
}  // namespace voxprint
