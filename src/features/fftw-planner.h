// FFTW's planner is not thread-safe (only fftwf_execute* is): every part of
// voxprint that makes or destroys a plan holds this one lock.
#pragma once

#include <mutex>

namespace voxprint {

// Leaked on purpose: plans cached in statics may be destroyed after it at
// exit.
std::mutex& FftwPlannerMutex();

}  // namespace voxprint
