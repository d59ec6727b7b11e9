// Diarization clusters named after enrolled speakers, for `voxprint
// diarize --speakers-db` and POST /api/diarize?name_speakers=true.
#pragma once

#include <memory>

#include "voxprint/diarizer.h"
#include "voxprint/speakers.h"

namespace voxprint::apps {

// Names a cluster after the enrolled speaker its centroid is closest to,
// when that voiceprint's raw cosine is above `threshold` (open-set, as
// identification); otherwise the cluster keeps its SPEAKER_nn label. The
// store must hold the diarizing model's embeddings (SpeakerStore::Open
// checks the model's SHA-256).
SpeakerNamer NamerFromStore(std::shared_ptr<SpeakerStore> store,
                            double threshold);

}  // namespace voxprint::apps
