// CreateBackend: the only place that maps device names to backends.
#include <memory>
#include <string>

#include "backends/cpu/cpu-backend.h"
#include "voxprint/backend.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

// Why CUDA devices cannot be used: this build has no CUDA backend yet (a
// future cuda/ folder replaces this with a probe of the driver).
std::string CudaUnavailableReason() {
  return "voxprint was built without CUDA";
}

bool IsCudaName(const std::string& device) {
  return device == "cuda" || device.rfind("cuda:", 0) == 0;
}

}  // namespace

std::unique_ptr<Backend> CreateBackend(const std::string& device,
                                       const BackendOptions& options,
                                       std::string* why) {
  if (device == "cpu") return backends::cpu::CreateCpuBackend(options);
  if (IsCudaName(device)) {
    const std::string reason = CudaUnavailableReason();
    throw Error(ErrorCode::kBackendUnavailable,
                "device \"" + device + "\": " + reason);
  }
  if (device == "auto") {
    if (why != nullptr)
      *why = "auto: using cpu (" + CudaUnavailableReason() + ")";
    return backends::cpu::CreateCpuBackend(options);
  }
  throw Error(ErrorCode::kInvalidArgument,
              "device \"" + device +
                  "\": unknown (expected cpu, cuda, cuda:N or auto)");
}

}  // namespace voxprint
