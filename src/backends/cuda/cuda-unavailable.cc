// Stand-in for the CUDA backend in builds without VOXPRINT_WITH_CUDA.
#include "backends/cuda/cuda-backend.h"
#include "voxprint/error.h"

namespace voxprint::backends::cuda {

bool CompiledIn() { return false; }

std::string UnavailableReason(int /*device_index*/) {
  return "voxprint was built without CUDA";
}

std::unique_ptr<Backend> CreateCudaBackend(int device_index,
                                           const BackendOptions& /*options*/) {
  throw Error(ErrorCode::kBackendUnavailable,
              "cuda:" + std::to_string(device_index) + ": " +
                  UnavailableReason(device_index));
}

}  // namespace voxprint::backends::cuda
