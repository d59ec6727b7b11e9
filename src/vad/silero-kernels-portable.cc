// The kernels for any CPU (the compiler's baseline, 4 floats a vector), and
// the choice among the sets this build has.
#define VOXPRINT_VAD_VECTOR_BYTES 16
#define VOXPRINT_VAD_GEMM_ROWS 4
#define VOXPRINT_VAD_GEMM_VECTORS 2
#define VOXPRINT_VAD_KERNELS_NAME "portable"
#define VOXPRINT_VAD_KERNELS_GETTER PortableSileroKernels
#include "vad/silero-kernels-impl.h"

namespace voxprint::vad {

#if defined(VOXPRINT_VAD_X86_KERNELS)
const SileroKernels& Avx512SileroKernels();
const SileroKernels& Avx2SileroKernels();
#endif

int AvailableSileroKernels(const SileroKernels** out, int capacity) {
  int count = 0;
  auto add = [&](const SileroKernels& kernels) {
    if (count < capacity) out[count] = &kernels;
    ++count;
  };
#if defined(VOXPRINT_VAD_X86_KERNELS)
  // Also when called before the constructors have run. __builtin_cpu_supports
  // also asks whether the OS saves the registers.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) add(Avx512SileroKernels());
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    add(Avx2SileroKernels());
#endif
  add(PortableSileroKernels());
  return count;
}

const SileroKernels& BestSileroKernels() {
  static const SileroKernels* const best = [] {
    const SileroKernels* first = nullptr;
    AvailableSileroKernels(&first, 1);
    return first;
  }();
  return *best;
}

}  // namespace voxprint::vad
