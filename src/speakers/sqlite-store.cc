// The SQLite SpeakerStore: one file, WAL, one transaction per change.
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "speakers/indexed-store.h"
#include "speakers/store-common.h"
#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace voxprint {

namespace {

// 'VXPR': marks a SQLite file as a voxprint speakers store.
constexpr int kApplicationId = 0x56585052;
constexpr int kSchemaVersion = 1;

// Schema migrations: kMigrations[v] brings a store from version v to v + 1.
const char* const kMigrations[] = {
    // 0 -> 1: the first schema.
    "CREATE TABLE store_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE speakers("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  metadata TEXT,"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL,"
    "  voiceprint BLOB NOT NULL);"
    "CREATE TABLE enrollments("
    "  id INTEGER PRIMARY KEY,"
    "  speaker_id INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,"
    "  source TEXT NOT NULL,"
    "  audio_sha256 TEXT NOT NULL,"
    "  duration_s REAL NOT NULL,"
    "  speech_s REAL NOT NULL,"
    "  embedding BLOB NOT NULL,"
    "  model_sha256 TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    "CREATE INDEX enrollments_by_speaker ON enrollments(speaker_id);",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// A prepared statement, finalised on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const std::string& where)
      : db_(db), where_(where) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
      Fail();
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int i, const std::string& text) {
    Check(sqlite3_bind_text(stmt_, i, text.data(),
                            static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& Bind(int i, double value) {
    Check(sqlite3_bind_double(stmt_, i, value));
    return *this;
  }
  Statement& Bind(int i, int64_t value) {
    Check(sqlite3_bind_int64(stmt_, i, value));
    return *this;
  }
  Statement& BindNull(int i) {
    Check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
  Statement& Bind(int i, std::span<const float> values) {
    Check(sqlite3_bind_blob(stmt_, i, values.data(),
                            static_cast<int>(values.size_bytes()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  // True while a row is available.
  bool Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    Fail();
  }
  void Run() {
    while (Step()) {
    }
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string Text(int column) const {
    const auto* text =
        reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return text ? std::string(text, sqlite3_column_bytes(stmt_, column)) : "";
  }
  double Double(int column) const {
    return sqlite3_column_double(stmt_, column);
  }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  // A float32 vector of `dim` values; kIoError when the blob is not one.
  std::vector<float> Floats(int column, int dim) const {
    const int bytes = sqlite3_column_bytes(stmt_, column);
    const void* data = sqlite3_column_blob(stmt_, column);
    if (bytes != dim * static_cast<int>(sizeof(float)) || !data)
      throw Error(ErrorCode::kIoError,
                  where_ + ": corrupt store: a vector of " +
                      std::to_string(bytes) + " bytes where " +
                      std::to_string(dim * sizeof(float)) + " belong");
    std::vector<float> values(dim);
    std::memcpy(values.data(), data, bytes);
    return values;
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK) Fail();
  }
  [[noreturn]] void Fail();
  sqlite3* db_;
  std::string where_;
  sqlite3_stmt* stmt_ = nullptr;
};

// The error for a failed SQLite call, naming the file.
[[noreturn]] void ThrowSqlite(sqlite3* db, const std::string& where,
                              const std::string& doing = "") {
  const int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  std::string message = where + ": " + (doing.empty() ? "" : doing + ": ") +
                        (db ? sqlite3_errmsg(db) : "out of memory");
  switch (code & 0xff) {
    case SQLITE_NOTADB:
      message += " (not a SQLite database; the file was left untouched)";
      break;
    case SQLITE_CORRUPT:
      message +=
          " (the store is corrupt; the file was left untouched: "
          "restore it from a backup or an export)";
      break;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      message += " (check the permissions of the file and its folder)";
      break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      message += " (another process holds the store)";
      break;
    default:
      break;
  }
  throw Error(ErrorCode::kIoError, message);
}

void Statement::Fail() { ThrowSqlite(db_, where_); }

class SqliteSpeakerStore final : public IndexedSpeakerStore {
 public:
  explicit SqliteSpeakerStore(const SpeakerStoreOptions& options);
  ~SqliteSpeakerStore() override { sqlite3_close_v2(db_); }

  const std::string& location() const override { return path_; }

  SpeakerInfo Enroll(const std::string& name,
                     std::span<const Enrollment> enrollments,
                     const std::string& metadata_json, bool append) override;
  void Remove(const std::string& name) override;
  void Rename(const std::string& old_name,
              const std::string& new_name) override;
  std::vector<SpeakerInfo> List() override;
  std::vector<Enrollment> Enrollments(const std::string& name) override;
  size_t Import(const std::string& document) override;

 protected:
  void SyncIndexLocked() override;
  SpeakerInfo ReadInfo(const std::string& name) override;

 private:
  // Runs `change` in one BEGIN IMMEDIATE transaction that also bumps the
  // store's generation; rolls back on any exception.
  // `apply` then updates the in-memory voiceprints, under the same lock,
  // unless they must be reloaded from the file anyway.
  template <typename Change, typename Apply>
  void Write(const Change& change, const Apply& apply);
  void Exec(const std::string& sql, const std::string& doing = "");
  int64_t ReadGeneration();
  void ReloadIndexLocked();
  int64_t SpeakerId(const std::string& name);  // -1 when absent
  // Recomputes a speaker's voiceprint from its enrollments.
  std::vector<float> UpdateVoiceprint(int64_t speaker_id,
                                      const std::string& now);
  void AddEnrollmentsLocked(int64_t speaker_id,
                            std::span<const Enrollment> enrollments,
                            const std::string& now);

  std::string path_;
  sqlite3* db_ = nullptr;
};

SqliteSpeakerStore::SqliteSpeakerStore(const SpeakerStoreOptions& options)
    : IndexedSpeakerStore(options.model_sha256, options.embedding_dim),
      path_(options.location.empty() ? DefaultSpeakerStorePath()
                                     : options.location) {
  if (dim_ < 1 || dim_ > 65536)
    throw Error(ErrorCode::kInvalidArgument,
                path_ + ": embedding size " + std::to_string(dim_));
  std::error_code error;
  const bool exists = std::filesystem::exists(path_, error);
  if (!exists) {
    if (!options.create || model_sha256_.empty())
      throw Error(ErrorCode::kIoError, path_ + ": no speakers store there");
    const auto folder = std::filesystem::path(path_).parent_path();
    if (!folder.empty()) {
      std::filesystem::create_directories(folder, error);
      if (error)
        throw Error(
            ErrorCode::kIoError,
            folder.string() + ": cannot create the folder: " + error.message());
    }
  } else if (std::filesystem::is_directory(path_, error)) {
    throw Error(ErrorCode::kIoError, path_ + ": is a folder, not a store");
  }
  const int flags = SQLITE_OPEN_READWRITE |
                    (options.create ? SQLITE_OPEN_CREATE : 0) |
                    SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error(ErrorCode::kIoError, path_ + ": cannot open: " + message);
  }
  try {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    Exec("PRAGMA foreign_keys = ON");
    // Read before anything writes: a file that is not a database, not ours
    // or from a newer schema must stay exactly as it is.
    int64_t application_id = 0, version = 0, objects = 0;
    {
      Statement query(db_, "PRAGMA application_id", path_);
      if (query.Step()) application_id = query.Int(0);
    }
    {
      Statement query(db_, "PRAGMA user_version", path_);
      if (query.Step()) version = query.Int(0);
    }
    {
      Statement query(db_, "SELECT count(*) FROM sqlite_master", path_);
      if (query.Step()) objects = query.Int(0);
    }
    const bool fresh = application_id == 0 && version == 0 && objects == 0;
    if (!fresh && application_id != kApplicationId)
      throw Error(ErrorCode::kIoError,
                  path_ +
                      ": a SQLite database but not a voxprint speakers "
                      "store (left untouched)");
    if (version > kSchemaVersion)
      throw Error(ErrorCode::kIoError,
                  path_ + ": written by a newer voxprint (store schema " +
                      std::to_string(version) + "; this build reads up to " +
                      std::to_string(kSchemaVersion) +
                      "); upgrade voxprint. The file was left untouched");
    if (sqlite3_db_readonly(db_, "main") == 1 && version < kSchemaVersion)
      throw Error(ErrorCode::kIoError,
                  path_ +
                      ": cannot write the file to set it up (check its "
                      "permissions)");
    if (sqlite3_db_readonly(db_, "main") != 1) {
      Statement wal(db_, "PRAGMA journal_mode = WAL", path_);
      wal.Run();
    }
    if (version == 0 && model_sha256_.empty())
      throw Error(ErrorCode::kIoError,
                  path_ +
                      ": no speakers store there yet (enroll a speaker "
                      "first)");
    if (version < kSchemaVersion) {
      Exec("BEGIN IMMEDIATE", "cannot set up the store");
      try {
        // Another process may have set it up while we waited for the lock.
        Statement query(db_, "PRAGMA user_version", path_);
        version = query.Step() ? query.Int(0) : 0;
        for (int64_t v = version; v < kSchemaVersion; ++v)
          Exec(kMigrations[v], "migrating to schema " + std::to_string(v + 1));
        if (version == 0) {
          Statement put(db_,
                        "INSERT INTO store_info(key, value) VALUES "
                        "('model_sha256', ?1), ('embedding_dim', ?2), "
                        "('generation', '0'), ('created_at', ?3)",
                        path_);
          put.Bind(1, model_sha256_)
              .Bind(2, std::to_string(dim_))
              .Bind(3, NowIso8601())
              .Run();
          Exec("PRAGMA application_id = " + std::to_string(kApplicationId));
        }
        Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
        Exec("COMMIT");
      } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }
    std::string stored_model, stored_dim;
    {
      Statement query(db_, "SELECT key, value FROM store_info", path_);
      while (query.Step()) {
        if (query.Text(0) == "model_sha256") stored_model = query.Text(1);
        if (query.Text(0) == "embedding_dim") stored_dim = query.Text(1);
      }
    }
    if (model_sha256_.empty()) model_sha256_ = stored_model;
    if (stored_model != model_sha256_)
      throw Error(ErrorCode::kModelError,
                  path_ +
                      ": the store holds embeddings of the model with "
                      "SHA-256 " +
                      stored_model + ", not of this model (SHA-256 " +
                      model_sha256_ +
                      "); use that model, or another store (--db)");
    if (stored_dim != std::to_string(dim_))
      throw Error(ErrorCode::kModelError,
                  path_ + ": the store holds embeddings of size " + stored_dim +
                      ", this model makes " + std::to_string(dim_));
    std::lock_guard lock(db_mutex_);
    SyncIndexLocked();
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

void SqliteSpeakerStore::Exec(const std::string& sql,
                              const std::string& doing) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    sqlite3_free(message);
    ThrowSqlite(db_, path_, doing);
  }
}

int64_t SqliteSpeakerStore::ReadGeneration() {
  Statement query(db_, "SELECT value FROM store_info WHERE key = 'generation'",
                  path_);
  if (!query.Step())
    throw Error(ErrorCode::kIoError, path_ + ": corrupt store: no generation");
  return std::stoll(query.Text(0));
}

void SqliteSpeakerStore::ReloadIndexLocked() {
  VoiceprintIndex fresh(dim_);
  {
    // Sized once: growing 100 MB by doubling would peak at three times it.
    Statement count(db_, "SELECT count(*) FROM speakers", path_);
    if (count.Step()) fresh.Reserve(static_cast<size_t>(count.Int(0)));
  }
  Statement query(db_, "SELECT name, voiceprint FROM speakers ORDER BY id",
                  path_);
  while (query.Step()) fresh.Set(query.Text(0), query.Floats(1, dim_));
  index_.Replace(std::move(fresh));
}

void SqliteSpeakerStore::SyncIndexLocked() {
  // The generation and the voiceprints are read in one snapshot.
  Exec("BEGIN");
  try {
    const int64_t generation = ReadGeneration();
    if (index_stale_ || generation != index_generation_) {
      ReloadIndexLocked();
      index_generation_ = generation;
      index_stale_ = false;
    }
    Exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

template <typename Change, typename Apply>
void SqliteSpeakerStore::Write(const Change& change, const Apply& apply) {
  std::lock_guard lock(db_mutex_);
  Exec("BEGIN IMMEDIATE", "cannot start a change");
  try {
    const int64_t generation = ReadGeneration();
    // Another process wrote since the index was read: reload it after.
    if (generation != index_generation_) index_stale_ = true;
    change();
    Statement bump(db_,
                   "UPDATE store_info SET value = ?1 WHERE key = 'generation'",
                   path_);
    bump.Bind(1, std::to_string(generation + 1)).Run();
    Exec("COMMIT", "cannot save the change");
    index_generation_ = generation + 1;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    index_stale_ = true;  // the in-memory changes may be ahead of the file
    throw;
  }
  if (index_stale_)
    SyncIndexLocked();
  else
    apply();
}

int64_t SqliteSpeakerStore::SpeakerId(const std::string& name) {
  Statement query(db_, "SELECT id FROM speakers WHERE name = ?1", path_);
  query.Bind(1, name);
  return query.Step() ? query.Int(0) : -1;
}

std::vector<float> SqliteSpeakerStore::UpdateVoiceprint(
    int64_t speaker_id, const std::string& now) {
  std::vector<std::vector<float>> embeddings;
  {
    Statement query(
        db_, "SELECT embedding FROM enrollments WHERE speaker_id = ?1", path_);
    query.Bind(1, speaker_id);
    while (query.Step()) embeddings.push_back(query.Floats(0, dim_));
  }
  std::vector<float> voiceprint = MakeVoiceprint(embeddings);
  Statement update(db_,
                   "UPDATE speakers SET voiceprint = ?1, updated_at = ?2 "
                   "WHERE id = ?3",
                   path_);
  update.Bind(1, std::span<const float>(voiceprint))
      .Bind(2, now)
      .Bind(3, speaker_id)
      .Run();
  return voiceprint;
}

void SqliteSpeakerStore::AddEnrollmentsLocked(
    int64_t speaker_id, std::span<const Enrollment> enrollments,
    const std::string& now) {
  Statement insert(db_,
                   "INSERT INTO enrollments(speaker_id, source, audio_sha256, "
                   "duration_s, speech_s, embedding, model_sha256, created_at) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                   path_);
  for (const Enrollment& enrollment : enrollments) {
    insert.Bind(1, speaker_id)
        .Bind(2, enrollment.source)
        .Bind(3, enrollment.audio_sha256)
        .Bind(4, enrollment.duration_s)
        .Bind(5, enrollment.speech_s)
        .Bind(6, std::span<const float>(enrollment.embedding))
        .Bind(7, model_sha256_)
        .Bind(8, enrollment.created_at.empty() ? now : enrollment.created_at)
        .Run();
    insert.Reset();
  }
}

SpeakerInfo SqliteSpeakerStore::Enroll(const std::string& name,
                                       std::span<const Enrollment> enrollments,
                                       const std::string& metadata_json,
                                       bool append) {
  ValidateSpeakerName(name);
  CheckMetadata(metadata_json);
  if (enrollments.empty())
    throw Error(ErrorCode::kInvalidArgument,
                name + ": an enrollment needs at least one recording");
  for (const Enrollment& enrollment : enrollments)
    CheckEmbedding(enrollment.embedding, dim_, enrollment.source);
  std::vector<float> voiceprint;
  Write(
      [&] {
        const std::string now = NowIso8601();
        int64_t id = SpeakerId(name);
        if (id >= 0 && !append)
          throw Error(ErrorCode::kAlreadyExists,
                      "speaker \"" + name + "\" exists already");
        if (id < 0) {
          Statement insert(
              db_,
              "INSERT INTO speakers(name, metadata, created_at, "
              "updated_at, voiceprint) VALUES (?1, ?2, ?3, ?3, x'')",
              path_);
          insert.Bind(1, name);
          if (metadata_json.empty())
            insert.BindNull(2);
          else
            insert.Bind(2, metadata_json);
          insert.Bind(3, now).Run();
          id = sqlite3_last_insert_rowid(db_);
        } else if (!metadata_json.empty()) {
          Statement update(
              db_, "UPDATE speakers SET metadata = ?1 WHERE id = ?2", path_);
          update.Bind(1, metadata_json).Bind(2, id).Run();
        }
        AddEnrollmentsLocked(id, enrollments, now);
        voiceprint = UpdateVoiceprint(id, now);
      },
      [&] { index_.Set(name, voiceprint); });
  std::lock_guard lock(db_mutex_);
  return ReadInfo(name);
}

void SqliteSpeakerStore::Remove(const std::string& name) {
  Write(
      [&] {
        if (SpeakerId(name) < 0)
          throw Error(ErrorCode::kNotFound,
                      "no speaker named \"" + name + "\"");
        Statement remove(db_, "DELETE FROM speakers WHERE name = ?1", path_);
        remove.Bind(1, name).Run();
      },
      [&] { index_.Remove(name); });
}

void SqliteSpeakerStore::Rename(const std::string& old_name,
                                const std::string& new_name) {
  ValidateSpeakerName(new_name);
  Write(
      [&] {
        if (SpeakerId(old_name) < 0)
          throw Error(ErrorCode::kNotFound,
                      "no speaker named \"" + old_name + "\"");
        if (old_name == new_name) return;
        if (SpeakerId(new_name) >= 0)
          throw Error(ErrorCode::kAlreadyExists,
                      "speaker \"" + new_name + "\" exists already");
        Statement rename(db_,
                         "UPDATE speakers SET name = ?1, updated_at = ?2 "
                         "WHERE name = ?3",
                         path_);
        rename.Bind(1, new_name).Bind(2, NowIso8601()).Bind(3, old_name).Run();
      },
      [&] { index_.Rename(old_name, new_name); });
}

namespace {
const char* const kInfoQuery =
    "SELECT s.name, coalesce(s.metadata, ''), s.created_at, s.updated_at, "
    "count(e.id), coalesce(sum(e.duration_s), 0), coalesce(sum(e.speech_s), 0) "
    "FROM speakers s LEFT JOIN enrollments e ON e.speaker_id = s.id ";

SpeakerInfo InfoFromRow(const Statement& row) {
  SpeakerInfo info;
  info.name = row.Text(0);
  info.metadata_json = row.Text(1);
  info.created_at = row.Text(2);
  info.updated_at = row.Text(3);
  info.enrollments = static_cast<int>(row.Int(4));
  info.duration_s = row.Double(5);
  info.speech_s = row.Double(6);
  return info;
}
}  // namespace

SpeakerInfo SqliteSpeakerStore::ReadInfo(const std::string& name) {
  Statement query(
      db_, std::string(kInfoQuery) + "WHERE s.name = ?1 GROUP BY s.id", path_);
  query.Bind(1, name);
  if (!query.Step())
    throw Error(ErrorCode::kNotFound, "no speaker named \"" + name + "\"");
  return InfoFromRow(query);
}

std::vector<SpeakerInfo> SqliteSpeakerStore::List() {
  std::lock_guard lock(db_mutex_);
  Statement query(
      db_, std::string(kInfoQuery) + "GROUP BY s.id ORDER BY s.name", path_);
  std::vector<SpeakerInfo> speakers;
  while (query.Step()) speakers.push_back(InfoFromRow(query));
  return speakers;
}

std::vector<Enrollment> SqliteSpeakerStore::Enrollments(
    const std::string& name) {
  std::lock_guard lock(db_mutex_);
  const int64_t id = SpeakerId(name);
  if (id < 0)
    throw Error(ErrorCode::kNotFound, "no speaker named \"" + name + "\"");
  Statement query(
      db_,
      "SELECT source, audio_sha256, duration_s, speech_s, "
      "embedding, created_at FROM enrollments WHERE speaker_id = ?1 "
      "ORDER BY id",
      path_);
  query.Bind(1, id);
  std::vector<Enrollment> enrollments;
  while (query.Step())
    enrollments.push_back({query.Text(0), query.Text(1), query.Double(2),
                           query.Double(3), query.Floats(4, dim_),
                           query.Text(5)});
  return enrollments;
}

size_t SqliteSpeakerStore::Import(const std::string& text) {
  const std::vector<IncomingSpeaker> incoming =
      ParseExportDocument(text, model_sha256_, dim_);
  Write(
      [&] {
        const std::string now = NowIso8601();
        for (const IncomingSpeaker& in : incoming) {
          if (SpeakerId(in.name) >= 0)
            throw Error(ErrorCode::kAlreadyExists,
                        "speaker \"" + in.name +
                            "\" exists already; nothing was imported");
          Statement insert(
              db_,
              "INSERT INTO speakers(name, metadata, created_at, "
              "updated_at, voiceprint) VALUES (?1, ?2, ?3, ?3, x'')",
              path_);
          insert.Bind(1, in.name);
          if (in.metadata.empty())
            insert.BindNull(2);
          else
            insert.Bind(2, in.metadata);
          insert.Bind(3, now).Run();
          const int64_t id = sqlite3_last_insert_rowid(db_);
          AddEnrollmentsLocked(id, in.enrollments, now);
          UpdateVoiceprint(id, now);
        }
        index_stale_ = true;  // reloaded once after the commit
      },
      [] {});
  return incoming.size();
}

}  // namespace

std::unique_ptr<SpeakerStore> OpenPostgresSpeakerStore(
    const SpeakerStoreOptions& options);  // postgres-store.cc

int SpeakerStore::SchemaVersion() { return kSchemaVersion; }

std::unique_ptr<SpeakerStore> SpeakerStore::Open(
    const SpeakerStoreOptions& options) {
  const std::string& location = options.location;
  if (location.rfind("postgresql://", 0) == 0 ||
      location.rfind("postgres://", 0) == 0) {
#if VOXPRINT_HAVE_POSTGRES
    return OpenPostgresSpeakerStore(options);
#else
    throw Error(ErrorCode::kInvalidArgument,
                "this voxprint was built without PostgreSQL support (libpq)");
#endif
  }
  return std::make_unique<SqliteSpeakerStore>(options);
}

void ValidateSpeakerName(const std::string& name) {
  const auto bad = [&](const std::string& why) {
    std::string shown;
    for (const char c : name.substr(0, 40))
      shown += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    return Error(ErrorCode::kInvalidArgument,
                 "bad speaker name \"" + shown + "\": " + why);
  };
  size_t characters = 0;
  for (size_t i = 0; i < name.size();) {
    const auto byte = static_cast<unsigned char>(name[i]);
    size_t length = byte < 0x80           ? 1
                    : (byte >> 5) == 0x6  ? 2
                    : (byte >> 4) == 0xe  ? 3
                    : (byte >> 3) == 0x1e ? 4
                                          : 0;
    if (length == 0 || i + length > name.size()) throw bad("not UTF-8");
    uint32_t code = length == 1 ? byte : byte & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(name[i + k]);
      if ((next & 0xc0) != 0x80) throw bad("not UTF-8");
      code = (code << 6) | (next & 0x3f);
    }
    const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || code > 0x10ffff ||
        (code >= 0xd800 && code <= 0xdfff))
      throw bad("not UTF-8");
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f))
      throw bad("control characters are not allowed");
    ++characters;
    i += length;
  }
  if (characters == 0) throw bad("empty");
  if (characters > 128)
    throw bad(std::to_string(characters) + " characters (at most 128)");
}

}  // namespace voxprint
