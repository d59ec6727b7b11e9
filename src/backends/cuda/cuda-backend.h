// The CUDA (cuDNN) backend (internal; the public entry is
// CreateBackend("cuda[:N]") or "auto").
//
// Compiled only with VOXPRINT_WITH_CUDA; otherwise cuda-unavailable.cc
// provides the same functions, reporting that CUDA was not built in, so the
// registry has no #if.
#pragma once

#include <memory>
#include <string>

#include "voxprint/backend.h"

namespace voxprint::backends::cuda {

// Whether this build contains the CUDA backend.
bool CompiledIn();

// Empty when device `device_index` can run the backend; otherwise why not
// ("no CUDA driver: ...", "device 2 does not exist (1 device)", ...).
// Never throws.
std::string UnavailableReason(int device_index);

// Throws ErrorCode::kBackendUnavailable with the reason when the device
// cannot be used, kInvalidArgument for options it does not support
// (precision other than fp32).
std::unique_ptr<Backend> CreateCudaBackend(int device_index,
                                           const BackendOptions& options);

}  // namespace voxprint::backends::cuda
