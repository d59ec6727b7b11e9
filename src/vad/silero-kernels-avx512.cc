// The kernels for AVX-512 (built with -mavx512f -mfma): 16 floats a vector,
// 6 x 64 tiles (24 of the 32 vector registers).
#define VOXPRINT_VAD_VECTOR_BYTES 64
#define VOXPRINT_VAD_GEMM_ROWS 6
#define VOXPRINT_VAD_GEMM_VECTORS 4
#define VOXPRINT_VAD_KERNELS_NAME "avx512"
#define VOXPRINT_VAD_KERNELS_GETTER Avx512SileroKernels
#include "vad/silero-kernels-impl.h"
