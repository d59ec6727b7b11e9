// CreateBackend: the only place that maps device names to backends.
#include "backends/registry.h"

#include <charconv>
#include <memory>
#include <string>

#include "backends/cpu/cpu-backend.h"
#include "backends/cuda/cuda-backend.h"
#include "voxprint/backend.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

bool IsCudaName(const std::string& device) {
  return device == "cuda" || device.rfind("cuda:", 0) == 0;
}

// "cuda" -> 0, "cuda:N" -> N; throws kInvalidArgument for anything else.
int CudaIndex(const std::string& device) {
  if (device == "cuda") return 0;
  const std::string digits = device.substr(5);
  int index = -1;
  const auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (digits.empty() || ec != std::errc() ||
      end != digits.data() + digits.size() || index < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "device \"" + device +
                    "\": bad CUDA device index (expected cuda:N, N >= 0)");
  return index;
}

}  // namespace

namespace backends {
bool BuiltWithCuda() { return cuda::CompiledIn(); }
}  // namespace backends

std::unique_ptr<Backend> CreateBackend(const std::string& device,
                                       const BackendOptions& options,
                                       std::string* why) {
  if (device == "cpu") return backends::cpu::CreateCpuBackend(options);
  if (IsCudaName(device)) {
    const int index = CudaIndex(device);
    const std::string reason = backends::cuda::UnavailableReason(index);
    if (!reason.empty())
      throw Error(ErrorCode::kBackendUnavailable,
                  "device \"" + device + "\": " + reason);
    return backends::cuda::CreateCudaBackend(index, options);
  }
  if (device == "auto") {
    const std::string reason = backends::cuda::UnavailableReason(0);
    if (reason.empty()) {
      // bf16 precisions are CPU-only options: auto keeps them on the CPU.
      if (!backends::cpu::PrecisionRunsBf16(options.precision)) {
        if (why != nullptr) *why = "auto: using cuda:0 (a usable CUDA device)";
        return backends::cuda::CreateCudaBackend(0, options);
      }
      if (why != nullptr)
        *why = "auto: using cpu (precision " + options.precision +
               " is not supported by the CUDA backend)";
      return backends::cpu::CreateCpuBackend(options);
    }
    if (why != nullptr)
      *why = backends::cuda::CompiledIn()
                 ? "auto: using cpu (no usable CUDA device: " + reason + ")"
                 : "auto: using cpu (" + reason + ")";
    return backends::cpu::CreateCpuBackend(options);
  }
  throw Error(ErrorCode::kInvalidArgument,
              "device \"" + device +
                  "\": unknown (expected cpu, cuda, cuda:N or auto)");
}

}  // namespace voxprint
