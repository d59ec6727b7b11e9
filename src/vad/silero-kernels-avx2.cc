// The kernels for AVX2 and FMA (built with -mavx2 -mfma): 8 floats a vector,
// 6 x 16 tiles (12 of the 16 vector registers).
#define VOXPRINT_VAD_VECTOR_BYTES 32
#define VOXPRINT_VAD_GEMM_ROWS 6
#define VOXPRINT_VAD_GEMM_VECTORS 2
#define VOXPRINT_VAD_KERNELS_NAME "avx2"
#define VOXPRINT_VAD_KERNELS_GETTER Avx2SileroKernels
#include "vad/silero-kernels-impl.h"
