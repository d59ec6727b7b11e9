// The PostgreSQL speakers store against a real, throwaway PostgreSQL server
// that this test starts (initdb + pg_ctl from Debian's postgresql package,
// as the `postgres` user when run as root, on a unix socket in a temporary
// folder). Skipped, saying why, where those programs are absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;

const fs::path kPgBin = "/usr/lib/postgresql/15/bin";
constexpr int kDim = 8;
const std::string kModel(64, 'a');

// Runs a shell command (as `postgres` when we are root); true on success.
bool RunAsPostgres(const std::string& command) {
  const std::string line =
      ::geteuid() == 0 ? "runuser -u postgres -- sh -c '" + command + "'"
                       : command;
  return std::system((line + " >/dev/null 2>&1").c_str()) == 0;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kPgBin / "initdb") || !fs::exists(kPgBin / "pg_ctl")) {
      skip_ = "PostgreSQL server programs absent (" + kPgBin.string() +
              "; Debian's postgresql package)";
      return;
    }
    dir_ = fs::temp_directory_path() /
           ("voxprint-pg-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    if (::geteuid() == 0 &&
        std::system(("chown postgres " + dir_.string()).c_str()) != 0) {
      skip_ = "cannot hand " + dir_.string() + " to the postgres user";
      return;
    }
    // A root whose folders other users cannot search (a chroot in a 0700
    // temporary folder) leaves the postgres user unable to run anything.
    if (!RunAsPostgres("test -w " + dir_.string())) {
      skip_ = "the postgres user cannot run programs in " + dir_.string() +
              " here (are / and the temporary folder searchable by others?)";
      return;
    }
    const std::string data = (dir_ / "data").string();
    if (!RunAsPostgres((kPgBin / "initdb").string() + " -D " + data +
                       " -A trust -U voxprint --no-sync") ||
        !RunAsPostgres((kPgBin / "pg_ctl").string() + " -D " + data + " -l " +
                       (dir_ / "log").string() + " -o \"-k " + dir_.string() +
                       " -c listen_addresses=\" -w start")) {
      failure_ = "could not start a PostgreSQL cluster in " + dir_.string();
      return;
    }
    started_ = true;
  }
  static void TearDownTestSuite() {
    if (started_)
      RunAsPostgres((kPgBin / "pg_ctl").string() + " -D " +
                    (dir_ / "data").string() + " -m immediate stop");
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(failure_.empty()) << failure_;
    // A database per test.
    const std::string name = "t" + std::to_string(++databases_);
    ASSERT_TRUE(RunAsPostgres((kPgBin / "createdb").string() + " -h " +
                              dir_.string() + " -U voxprint " + name))
        << "createdb failed";
    uri_ =
        "postgresql:///" + name + "?host=" + dir_.string() + "&user=voxprint";
  }
  std::unique_ptr<SpeakerStore> Open(const std::string& model = kModel) {
    SpeakerStoreOptions options;
    options.location = uri_;
    options.model_sha256 = model;
    options.embedding_dim = kDim;
    return SpeakerStore::Open(options);
  }

  static inline std::string skip_, failure_;
  static inline fs::path dir_;
  static inline bool started_ = false;
  static inline int databases_ = 0;
  std::string uri_;
};

std::vector<float> Axis(int axis, float tilt = 0.0f) {
  std::vector<float> v(kDim, 0.0f);
  v[axis % kDim] = 1.0f;
  v[(axis + 1) % kDim] = tilt;
  return v;
}

std::vector<Enrollment> One(std::vector<float> embedding) {
  Enrollment e;
  e.source = "a.wav";
  e.audio_sha256 = std::string(64, '0');
  e.duration_s = 2.0;
  e.speech_s = 1.5;
  e.embedding = std::move(embedding);
  return {e};
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

TEST_F(PostgresStoreTest, SameBehaviourAsTheFile) {
  auto store = Open();
  store->Enroll("alice", One(Axis(0)), R"({"a":1})");
  store->Enroll("bob", One(Axis(2)));
  store->Enroll("alice", One(Axis(0, 1.0f)), "", /*append=*/true);
  EXPECT_EQ(store->Get("alice").enrollments, 2);
  EXPECT_DOUBLE_EQ(store->Get("alice").speech_s, 3.0);
  EXPECT_EQ(store->Get("alice").metadata_json, R"({"a":1})");
  // (e0 + (e0 + e1)/sqrt 2) normalised, against e0.
  const double x = 1 + 1 / std::sqrt(2.0), y = 1 / std::sqrt(2.0);
  const Identification id = store->Identify(Axis(0), 5, 0.5);
  ASSERT_EQ(id.candidates.size(), 2u);
  EXPECT_EQ(id.speaker, "alice");
  EXPECT_NEAR(id.candidates[0].score, x / std::hypot(x, y), 1e-6);
  EXPECT_TRUE(store->Identify(Axis(5), 5, 0.5).unknown);
  EXPECT_TRUE(store->Verify("bob", Axis(2), 0.9).accepted);

  EXPECT_EQ(CodeOf([&] { store->Enroll("bob", One(Axis(3))); }),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(CodeOf([&] { store->Enroll("bad\nname", One(Axis(3))); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { store->Remove("nobody"); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { store->Verify("nobody", Axis(0), 0.5); }),
            ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { store->Rename("alice", "bob"); }),
            ErrorCode::kAlreadyExists);
  store->Rename("bob", "robert");
  store->Remove("alice");
  ASSERT_EQ(store->List().size(), 1u);
  EXPECT_EQ(store->List()[0].name, "robert");

  // Export from here, import into a SQLite file, and back.
  const std::string document = store->Export();
  EXPECT_EQ(CodeOf([&] { store->Import(document); }),
            ErrorCode::kAlreadyExists);
  store->Remove("robert");
  EXPECT_EQ(store->Import(document), 1u);
  EXPECT_NEAR(store->Verify("robert", Axis(2), 0.5).score, 1.0, 1e-6);
}

TEST_F(PostgresStoreTest, TwoHandlesLikeTwoServersSeeEachOther) {
  auto first = Open();
  auto second = Open();
  first->Enroll("alice", One(Axis(0)));
  EXPECT_EQ(second->Identify(Axis(0), 1, 0.5).speaker, "alice");
  second->Enroll("bob", One(Axis(1)));
  EXPECT_EQ(first->Identify(Axis(1), 1, 0.5).speaker, "bob");
  first->Remove("bob");
  EXPECT_TRUE(second->Identify(Axis(1), 1, 0.5).unknown);
  EXPECT_EQ(second->Size(), 1u);
}

TEST_F(PostgresStoreTest, AnotherModelAndBadServersAreClearErrors) {
  Open()->Enroll("alice", One(Axis(0)));
  std::string message;
  EXPECT_EQ(CodeOf([&] { Open(std::string(64, 'b')); }, &message),
            ErrorCode::kModelError);
  EXPECT_NE(message.find(kModel), std::string::npos) << message;
  EXPECT_NE(message.find(std::string(64, 'b')), std::string::npos) << message;
  EXPECT_EQ(Open()->Size(), 1u);

  uri_ = "postgresql://voxprint:secret@" + dir_.string() +
         "/nodb?host=" + dir_.string() + "&user=voxprint&dbname=absent";
  EXPECT_EQ(CodeOf([&] { Open(); }, &message), ErrorCode::kIoError);
  EXPECT_NE(message.find("cannot connect"), std::string::npos) << message;
  EXPECT_EQ(message.find("secret"), std::string::npos) << message;
}

}  // namespace
}  // namespace voxprint
