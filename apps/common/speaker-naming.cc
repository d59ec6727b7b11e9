#include "common/speaker-naming.h"

#include <utility>

namespace voxprint::apps {

SpeakerNamer NamerFromStore(std::shared_ptr<SpeakerStore> store,
                            double threshold) {
  return [store = std::move(store), threshold](
             std::span<const float> centroid) -> std::optional<SpeakerMatch> {
    const Identification found = store->Identify(centroid, 1, threshold);
    if (found.unknown) return std::nullopt;
    return SpeakerMatch{found.speaker, found.candidates.front().score};
  };
}

}  // namespace voxprint::apps
