// Whole-file embeddings of long inputs with bounded memory (internal).
//
// Two passes over the input, each decoding it from the start block by block:
//   1. decode -> resample -> fbank, summing every bin over all frames;
//   2. the same again, the mean subtracted, feeding the network tile by tile
//      (Session::RunWithFeatureSource).
// Memory does not grow with the length: a few seconds of samples and one
// network tile of features are held at a time. The result equals the
// in-memory pipeline's (same samples, features, means and tiles).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "audio/stream-decoder.h"
#include "voxprint/audio.h"
#include "voxprint/backend.h"
#include "voxprint/cancel.h"
#include "voxprint/features.h"

namespace voxprint::pipeline {

// Opens the input afresh, at its start (called once per pass).
using StreamOpener = std::function<std::unique_ptr<audio::StreamDecoder>()>;

struct LongAudioEmbedding {
  std::vector<float> embedding;
  AudioInfo info;           // of the original stream
  int64_t samples_16k = 0;  // length after resampling
  int64_t frames = 0;       // fbank frames
};

// Throws voxprint::Error: the decoder's errors, kCorruptInput when the input
// gives fewer than `min_frames` frames or the two passes disagree,
// kCancelled once `cancel` is raised (checked between decoded blocks and
// between the network's tiles).
LongAudioEmbedding EmbedLongAudio(const StreamOpener& open,
                                  const FbankOptions& fbank, Session& session,
                                  const std::string& name, int64_t min_frames,
                                  const CancelToken& cancel = {});

}  // namespace voxprint::pipeline
