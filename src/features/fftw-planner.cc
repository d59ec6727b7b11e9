#include "features/fftw-planner.h"

namespace voxprint {

std::mutex& FftwPlannerMutex() {
  static auto* mutex = new std::mutex;
  return *mutex;
}

}  // namespace voxprint
