// What the speakers stores (SQLite, PostgreSQL) share.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "voxprint/speakers.h"

namespace voxprint {

// Now, as ISO 8601 UTC with milliseconds.
std::string NowIso8601();
// kInvalidArgument unless the embedding has `dim` finite values, not all 0.
void CheckEmbedding(std::span<const float> embedding, int dim,
                    const std::string& what);
// kInvalidArgument unless empty or a JSON object of at most 64 KiB.
void CheckMetadata(const std::string& metadata);

// The portable voiceprints document of every speaker in `store`.
std::string ExportDocument(SpeakerStore& store);
struct IncomingSpeaker {
  std::string name, metadata;
  std::vector<Enrollment> enrollments;
};
// Parses and checks an ExportDocument against the store's model and size:
// kModelError for another model, kInvalidArgument for anything malformed.
std::vector<IncomingSpeaker> ParseExportDocument(
    const std::string& text, const std::string& model_sha256, int dim);

}  // namespace voxprint
