// What the SQLite and PostgreSQL stores share above their SQL: the model
// they hold embeddings of, one connection used by one thread at a time, and
// the voiceprints in memory that Identify and Verify score without holding
// the connection.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>

#include "speakers/voiceprint-index.h"
#include "voxprint/speakers.h"

namespace voxprint {

class IndexedSpeakerStore : public SpeakerStore {
 public:
  const std::string& model_sha256() const override { return model_sha256_; }
  int embedding_dim() const override { return dim_; }

  SpeakerInfo Get(const std::string& name) override;
  size_t Size() override;
  Identification Identify(std::span<const float> embedding, int top_k,
                          double threshold, const AsNorm* cohort) override;
  Verification Verify(const std::string& name, std::span<const float> embedding,
                      double threshold, const AsNorm* cohort) override;
  std::string Export() override;

 protected:
  IndexedSpeakerStore(std::string model_sha256, int dim)
      : model_sha256_(std::move(model_sha256)), dim_(dim), index_(dim) {}

  // Brings index_ up to date with the database (another process may have
  // written): reloads it when index_stale_ or the store's generation moved.
  // Caller holds db_mutex_.
  virtual void SyncIndexLocked() = 0;
  // kNotFound for an unknown name. Caller holds db_mutex_.
  virtual SpeakerInfo ReadInfo(const std::string& name) = 0;

  std::string model_sha256_;
  int dim_ = 0;
  std::mutex db_mutex_;  // one connection, used by one thread at a time
  VoiceprintIndex index_;
  int64_t index_generation_ = -1;
  bool index_stale_ = true;

 private:
  void SyncIndex();
};

}  // namespace voxprint
