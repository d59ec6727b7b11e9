#include "speakers/indexed-store.h"

#include "speakers/store-common.h"

namespace voxprint {

void IndexedSpeakerStore::SyncIndex() {
  std::lock_guard lock(db_mutex_);
  SyncIndexLocked();
}

SpeakerInfo IndexedSpeakerStore::Get(const std::string& name) {
  std::lock_guard lock(db_mutex_);
  return ReadInfo(name);
}

size_t IndexedSpeakerStore::Size() {
  SyncIndex();
  return index_.Size();
}

Identification IndexedSpeakerStore::Identify(std::span<const float> embedding,
                                             int top_k, double threshold,
                                             const AsNorm* cohort) {
  CheckEmbedding(embedding, dim_, "the query");
  SyncIndex();
  // The connection is free again: writers go on while this scores.
  return index_.Identify(embedding, top_k, threshold, cohort);
}

Verification IndexedSpeakerStore::Verify(const std::string& name,
                                         std::span<const float> embedding,
                                         double threshold,
                                         const AsNorm* cohort) {
  CheckEmbedding(embedding, dim_, "the query");
  SyncIndex();
  return index_.Verify(name, embedding, threshold, cohort);
}

std::string IndexedSpeakerStore::Export() { return ExportDocument(*this); }

}  // namespace voxprint
