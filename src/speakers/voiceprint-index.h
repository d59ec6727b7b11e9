// The voiceprints of a store in memory: one row-major matrix [speakers, dim]
// scored by a brute-force matrix-vector product (100,000 speakers of 256
// floats are 100 MB and a few milliseconds).
#pragma once

#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "voxprint/speakers.h"

namespace voxprint {

// Thread safety: all methods may be called concurrently; scoring holds a
// shared lock, changes an exclusive one.
class VoiceprintIndex {
 public:
  explicit VoiceprintIndex(int dim = 0) : dim_(dim) {}
  VoiceprintIndex(VoiceprintIndex&& other) noexcept;
  void Reserve(size_t speakers);
  // Adds or replaces a speaker's voiceprint (normalised, size dim).
  void Set(const std::string& name, std::vector<float> voiceprint);
  void Remove(const std::string& name);
  void Rename(const std::string& old_name, const std::string& new_name);
  void Replace(VoiceprintIndex&& other);
  size_t Size() const;

  // Top-k by cosine (the query is normalised here) or, with a cohort, by
  // AS-Norm score. kInvalidArgument for top_k < 1 or a bad threshold.
  Identification Identify(std::span<const float> query, int top_k,
                          double threshold, const AsNorm* cohort) const;
  // kNotFound for an unknown name.
  Verification Verify(const std::string& name, std::span<const float> query,
                      double threshold, const AsNorm* cohort) const;

 private:
  int dim_;
  mutable std::shared_mutex mutex_;
  std::vector<std::string> names_;
  std::vector<float> matrix_;
  std::unordered_map<std::string, size_t> rows_;
};

}  // namespace voxprint
