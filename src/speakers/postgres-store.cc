// The PostgreSQL SpeakerStore (`postgresql://...`): the same schema and
// behaviour as the SQLite file, shared by several servers. Writers serialise
// on the generation row (SELECT ... FOR UPDATE); every server reloads its
// in-memory voiceprints when the generation moved.
#include <libpq-fe.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "speakers/indexed-store.h"
#include "speakers/store-common.h"
#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace voxprint {

std::unique_ptr<SpeakerStore> OpenPostgresSpeakerStore(
    const SpeakerStoreOptions& options);

namespace {

constexpr int kSchemaVersion = 1;
constexpr int64_t kSetupLock = 0x56585052;  // 'VXPR'

// The location without a password, for messages.
std::string Redacted(const std::string& uri) {
  const size_t scheme = uri.find("://");
  const size_t at = uri.find('@');
  if (scheme == std::string::npos || at == std::string::npos) return uri;
  const size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon) + ":***" + uri.substr(at);
}

struct Param {
  std::string value;
  bool binary = false;
  bool null = false;
};

Param Text(std::string value) { return {std::move(value), false, false}; }
Param Bytes(std::span<const float> values) {
  return {std::string(reinterpret_cast<const char*>(values.data()),
                      values.size_bytes()),
          true, false};
}
Param Null() { return {"", false, true}; }

class Result {
 public:
  explicit Result(PGresult* result) : result_(result) {}
  ~Result() { PQclear(result_); }
  Result(Result&& other) noexcept : result_(other.result_) {
    other.result_ = nullptr;
  }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ExecStatusType Status() const { return PQresultStatus(result_); }
  int Rows() const { return PQntuples(result_); }
  bool Null(int row, int column) const {
    return PQgetisnull(result_, row, column) == 1;
  }
  std::string Text(int row, int column) const {
    return std::string(PQgetvalue(result_, row, column),
                       PQgetlength(result_, row, column));
  }
  double Double(int row, int column) const {
    return std::stod(Text(row, column));
  }
  int64_t Int(int row, int column) const {
    return std::stoll(Text(row, column));
  }
  // bytea in text form ("\x0a1b...") as float32 values.
  std::vector<float> Floats(int row, int column, int dim,
                            const std::string& where) const {
    const std::string hex = Text(row, column);
    const size_t bytes = dim * sizeof(float);
    if (hex.size() != 2 + 2 * bytes || hex.compare(0, 2, "\\x") != 0)
      throw Error(ErrorCode::kIoError, where + ": corrupt store: a vector of " +
                                           std::to_string(hex.size() / 2 - 1) +
                                           " bytes where " +
                                           std::to_string(bytes) + " belong");
    std::vector<uint8_t> raw(bytes);
    for (size_t i = 0; i < bytes; ++i)
      raw[i] = static_cast<uint8_t>(
          std::stoi(hex.substr(2 + 2 * i, 2), nullptr, 16));
    std::vector<float> values(dim);
    std::memcpy(values.data(), raw.data(), bytes);
    return values;
  }

 private:
  PGresult* result_;
};

class PostgresSpeakerStore final : public IndexedSpeakerStore {
 public:
  explicit PostgresSpeakerStore(const SpeakerStoreOptions& options);
  ~PostgresSpeakerStore() override { PQfinish(conn_); }

  const std::string& location() const override { return shown_; }

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
  Result Exec(const std::string& sql, const std::vector<Param>& params = {});
  template <typename Change, typename Apply>
  void Write(const Change& change, const Apply& apply);
  int64_t SpeakerId(const std::string& name);
  std::vector<float> UpdateVoiceprint(int64_t id, const std::string& now);
  void AddEnrollments(int64_t id, std::span<const Enrollment> enrollments,
                      const std::string& now);
  int64_t InsertSpeaker(const std::string& name, const std::string& metadata,
                        const std::string& now);

  std::string shown_;
  PGconn* conn_ = nullptr;
};

Result PostgresSpeakerStore::Exec(const std::string& sql,
                                  const std::vector<Param>& params) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const Param& p : params) {
    values.push_back(p.null ? nullptr : p.value.data());
    lengths.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.binary ? 1 : 0);
  }
  Result result(PQexecParams(conn_, sql.c_str(),
                             static_cast<int>(params.size()), nullptr,
                             values.data(), lengths.data(), formats.data(), 0));
  const ExecStatusType status = result.Status();
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    std::string message = PQerrorMessage(conn_);
    while (!message.empty() &&
           (message.back() == '\n' || message.back() == ' '))
      message.pop_back();
    throw Error(ErrorCode::kIoError, shown_ + ": " + message);
  }
  return result;
}

PostgresSpeakerStore::PostgresSpeakerStore(const SpeakerStoreOptions& options)
    : IndexedSpeakerStore(options.model_sha256, options.embedding_dim),
      shown_(Redacted(options.location)) {
  conn_ = PQconnectdb(options.location.c_str());
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string message = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    PQfinish(conn_);
    conn_ = nullptr;
    throw Error(ErrorCode::kIoError, shown_ + ": cannot connect: " + message);
  }
  try {
    Exec("SET client_min_messages = warning");
    Exec("BEGIN");
    try {
      Exec("SELECT pg_advisory_xact_lock(" + std::to_string(kSetupLock) + ")");
      const bool exists =
          Exec("SELECT to_regclass('voxprint_store_info') IS NOT NULL")
              .Text(0, 0) == "t";
      int64_t version = 0;
      if (exists) {
        Result row = Exec(
            "SELECT value FROM voxprint_store_info WHERE key = "
            "'schema_version'");
        version = row.Rows() ? std::stoll(row.Text(0, 0)) : 0;
      }
      if (version > kSchemaVersion)
        throw Error(ErrorCode::kIoError,
                    shown_ + ": written by a newer voxprint (store schema " +
                        std::to_string(version) + "; this build reads up to " +
                        std::to_string(kSchemaVersion) +
                        "); upgrade voxprint. Nothing was changed");
      if (version == 0) {
        if (model_sha256_.empty())
          throw Error(ErrorCode::kIoError,
                      shown_ +
                          ": no speakers store there yet (enroll a "
                          "speaker first)");
        Exec(
            "CREATE TABLE voxprint_store_info(key TEXT PRIMARY KEY, value "
            "TEXT NOT NULL)");
        Exec(
            "CREATE TABLE voxprint_speakers(id BIGSERIAL PRIMARY KEY, name "
            "TEXT NOT NULL UNIQUE, metadata TEXT, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, voiceprint BYTEA NOT NULL)");
        Exec(
            "CREATE TABLE voxprint_enrollments(id BIGSERIAL PRIMARY KEY, "
            "speaker_id BIGINT NOT NULL REFERENCES voxprint_speakers(id) ON "
            "DELETE CASCADE, source TEXT NOT NULL, audio_sha256 TEXT NOT "
            "NULL, duration_s DOUBLE PRECISION NOT NULL, speech_s DOUBLE "
            "PRECISION NOT NULL, embedding BYTEA NOT NULL, model_sha256 TEXT "
            "NOT NULL, created_at TEXT NOT NULL)");
        Exec(
            "CREATE INDEX voxprint_enrollments_by_speaker ON "
            "voxprint_enrollments(speaker_id)");
        Exec(
            "INSERT INTO voxprint_store_info(key, value) VALUES "
            "('schema_version', $1), ('model_sha256', $2), ('embedding_dim', "
            "$3), ('generation', '0'), ('created_at', $4)",
            {Text(std::to_string(kSchemaVersion)), Text(model_sha256_),
             Text(std::to_string(dim_)), Text(NowIso8601())});
      }
      Exec("COMMIT");
    } catch (...) {
      PQclear(PQexec(conn_, "ROLLBACK"));
      throw;
    }
    std::string stored_model, stored_dim;
    Result info = Exec("SELECT key, value FROM voxprint_store_info");
    for (int i = 0; i < info.Rows(); ++i) {
      if (info.Text(i, 0) == "model_sha256") stored_model = info.Text(i, 1);
      if (info.Text(i, 0) == "embedding_dim") stored_dim = info.Text(i, 1);
    }
    if (model_sha256_.empty()) model_sha256_ = stored_model;
    if (stored_model != model_sha256_)
      throw Error(ErrorCode::kModelError,
                  shown_ +
                      ": the store holds embeddings of the model with "
                      "SHA-256 " +
                      stored_model + ", not of this model (SHA-256 " +
                      model_sha256_ + "); use that model, or another store");
    if (stored_dim != std::to_string(dim_))
      throw Error(ErrorCode::kModelError,
                  shown_ + ": the store holds embeddings of size " +
                      stored_dim + ", this model makes " +
                      std::to_string(dim_));
    std::lock_guard lock(db_mutex_);
    SyncIndexLocked();
  } catch (...) {
    PQfinish(conn_);
    conn_ = nullptr;
    throw;
  }
}

void PostgresSpeakerStore::SyncIndexLocked() {
  Exec("BEGIN ISOLATION LEVEL REPEATABLE READ");
  try {
    const int64_t generation =
        Exec("SELECT value FROM voxprint_store_info WHERE key = 'generation'")
            .Int(0, 0);
    if (index_stale_ || generation != index_generation_) {
      VoiceprintIndex fresh(dim_);
      Result rows =
          Exec("SELECT name, voiceprint FROM voxprint_speakers ORDER BY id");
      fresh.Reserve(static_cast<size_t>(rows.Rows()));
      for (int i = 0; i < rows.Rows(); ++i)
        fresh.Set(rows.Text(i, 0), rows.Floats(i, 1, dim_, shown_));
      index_.Replace(std::move(fresh));
      index_generation_ = generation;
      index_stale_ = false;
    }
    Exec("COMMIT");
  } catch (...) {
    PQclear(PQexec(conn_, "ROLLBACK"));
    throw;
  }
}

template <typename Change, typename Apply>
void PostgresSpeakerStore::Write(const Change& change, const Apply& apply) {
  std::lock_guard lock(db_mutex_);
  Exec("BEGIN");
  try {
    // Writers of every server queue here, one at a time.
    const int64_t generation =
        Exec(
            "SELECT value FROM voxprint_store_info WHERE key = 'generation' "
            "FOR UPDATE")
            .Int(0, 0);
    if (generation != index_generation_) index_stale_ = true;
    change();
    Exec("UPDATE voxprint_store_info SET value = $1 WHERE key = 'generation'",
         {Text(std::to_string(generation + 1))});
    Exec("COMMIT");
    index_generation_ = generation + 1;
  } catch (...) {
    PQclear(PQexec(conn_, "ROLLBACK"));
    index_stale_ = true;
    throw;
  }
  if (index_stale_)
    SyncIndexLocked();
  else
    apply();
}

int64_t PostgresSpeakerStore::SpeakerId(const std::string& name) {
  Result row =
      Exec("SELECT id FROM voxprint_speakers WHERE name = $1", {Text(name)});
  return row.Rows() ? row.Int(0, 0) : -1;
}

int64_t PostgresSpeakerStore::InsertSpeaker(const std::string& name,
                                            const std::string& metadata,
                                            const std::string& now) {
  return Exec(
             "INSERT INTO voxprint_speakers(name, metadata, created_at, "
             "updated_at, voiceprint) VALUES ($1, $2, $3, $3, ''::bytea) "
             "RETURNING id",
             {Text(name), metadata.empty() ? Null() : Text(metadata),
              Text(now)})
      .Int(0, 0);
}

void PostgresSpeakerStore::AddEnrollments(
    int64_t id, std::span<const Enrollment> enrollments,
    const std::string& now) {
  for (const Enrollment& e : enrollments)
    Exec(
        "INSERT INTO voxprint_enrollments(speaker_id, source, audio_sha256, "
        "duration_s, speech_s, embedding, model_sha256, created_at) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8)",
        {Text(std::to_string(id)), Text(e.source), Text(e.audio_sha256),
         Text(std::to_string(e.duration_s)), Text(std::to_string(e.speech_s)),
         Bytes(e.embedding), Text(model_sha256_),
         Text(e.created_at.empty() ? now : e.created_at)});
}

std::vector<float> PostgresSpeakerStore::UpdateVoiceprint(
    int64_t id, const std::string& now) {
  Result rows =
      Exec("SELECT embedding FROM voxprint_enrollments WHERE speaker_id = $1",
           {Text(std::to_string(id))});
  std::vector<std::vector<float>> embeddings;
  for (int i = 0; i < rows.Rows(); ++i)
    embeddings.push_back(rows.Floats(i, 0, dim_, shown_));
  std::vector<float> voiceprint = MakeVoiceprint(embeddings);
  Exec(
      "UPDATE voxprint_speakers SET voiceprint = $1, updated_at = $2 WHERE "
      "id = $3",
      {Bytes(voiceprint), Text(now), Text(std::to_string(id))});
  return voiceprint;
}

SpeakerInfo PostgresSpeakerStore::Enroll(
    const std::string& name, std::span<const Enrollment> enrollments,
    const std::string& metadata_json, bool append) {
  ValidateSpeakerName(name);
  CheckMetadata(metadata_json);
  if (enrollments.empty())
    throw Error(ErrorCode::kInvalidArgument,
                name + ": an enrollment needs at least one recording");
  for (const Enrollment& e : enrollments)
    CheckEmbedding(e.embedding, dim_, e.source);
  std::vector<float> voiceprint;
  Write(
      [&] {
        const std::string now = NowIso8601();
        int64_t id = SpeakerId(name);
        if (id >= 0 && !append)
          throw Error(ErrorCode::kAlreadyExists,
                      "speaker \"" + name + "\" exists already");
        if (id < 0) {
          id = InsertSpeaker(name, metadata_json, now);
        } else if (!metadata_json.empty()) {
          Exec("UPDATE voxprint_speakers SET metadata = $1 WHERE id = $2",
               {Text(metadata_json), Text(std::to_string(id))});
        }
        AddEnrollments(id, enrollments, now);
        voiceprint = UpdateVoiceprint(id, now);
      },
      [&] { index_.Set(name, voiceprint); });
  std::lock_guard lock(db_mutex_);
  return ReadInfo(name);
}

void PostgresSpeakerStore::Remove(const std::string& name) {
  Write(
      [&] {
        if (SpeakerId(name) < 0)
          throw Error(ErrorCode::kNotFound,
                      "no speaker named \"" + name + "\"");
        Exec("DELETE FROM voxprint_speakers WHERE name = $1", {Text(name)});
      },
      [&] { index_.Remove(name); });
}

void PostgresSpeakerStore::Rename(const std::string& old_name,
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
        Exec(
            "UPDATE voxprint_speakers SET name = $1, updated_at = $2 WHERE "
            "name = $3",
            {Text(new_name), Text(NowIso8601()), Text(old_name)});
      },
      [&] { index_.Rename(old_name, new_name); });
}

namespace {
const char* const kInfoQuery =
    "SELECT s.name, coalesce(s.metadata, ''), s.created_at, s.updated_at, "
    "count(e.id), coalesce(sum(e.duration_s), 0), coalesce(sum(e.speech_s), "
    "0) FROM voxprint_speakers s LEFT JOIN voxprint_enrollments e ON "
    "e.speaker_id = s.id ";

SpeakerInfo InfoFromRow(const Result& rows, int i) {
  SpeakerInfo info;
  info.name = rows.Text(i, 0);
  info.metadata_json = rows.Text(i, 1);
  info.created_at = rows.Text(i, 2);
  info.updated_at = rows.Text(i, 3);
  info.enrollments = static_cast<int>(rows.Int(i, 4));
  info.duration_s = rows.Double(i, 5);
  info.speech_s = rows.Double(i, 6);
  return info;
}
}  // namespace

SpeakerInfo PostgresSpeakerStore::ReadInfo(const std::string& name) {
  Result rows =
      Exec(std::string(kInfoQuery) + "WHERE s.name = $1 GROUP BY s.id",
           {Text(name)});
  if (!rows.Rows())
    throw Error(ErrorCode::kNotFound, "no speaker named \"" + name + "\"");
  return InfoFromRow(rows, 0);
}

std::vector<SpeakerInfo> PostgresSpeakerStore::List() {
  std::lock_guard lock(db_mutex_);
  Result rows = Exec(std::string(kInfoQuery) +
                     "GROUP BY s.id ORDER BY s.name COLLATE \"C\"");
  std::vector<SpeakerInfo> speakers;
  for (int i = 0; i < rows.Rows(); ++i)
    speakers.push_back(InfoFromRow(rows, i));
  return speakers;
}

std::vector<Enrollment> PostgresSpeakerStore::Enrollments(
    const std::string& name) {
  std::lock_guard lock(db_mutex_);
  const int64_t id = SpeakerId(name);
  if (id < 0)
    throw Error(ErrorCode::kNotFound, "no speaker named \"" + name + "\"");
  Result rows = Exec(
      "SELECT source, audio_sha256, duration_s, speech_s, embedding, "
      "created_at FROM voxprint_enrollments WHERE speaker_id = $1 ORDER BY id",
      {Text(std::to_string(id))});
  std::vector<Enrollment> enrollments;
  for (int i = 0; i < rows.Rows(); ++i)
    enrollments.push_back({rows.Text(i, 0), rows.Text(i, 1), rows.Double(i, 2),
                           rows.Double(i, 3), rows.Floats(i, 4, dim_, shown_),
                           rows.Text(i, 5)});
  return enrollments;
}

size_t PostgresSpeakerStore::Import(const std::string& text) {
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
          const int64_t id = InsertSpeaker(in.name, in.metadata, now);
          AddEnrollments(id, in.enrollments, now);
          UpdateVoiceprint(id, now);
        }
        index_stale_ = true;
      },
      [] {});
  return incoming.size();
}

}  // namespace

std::unique_ptr<SpeakerStore> OpenPostgresSpeakerStore(
    const SpeakerStoreOptions& options) {
  return std::make_unique<PostgresSpeakerStore>(options);
}

}  // namespace voxprint
