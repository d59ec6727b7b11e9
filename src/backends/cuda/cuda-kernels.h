// Element-wise and reduction kernels of the CUDA backend (internal).
//
// Plain host functions that enqueue a kernel on `stream` and return the
// launch status; they never synchronize and never throw, so that this header
// needs no CUDA compiler and the caller converts statuses to voxprint::Error.
// All tensors are fp32 device pointers, row-major.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace voxprint::backends::cuda {

// features [batch, frames, bins] -> image [batch, 1, bins, frames].
cudaError_t LaunchTransposeFeatures(const float* features, float* image,
                                    int batch, int64_t frames, int bins,
                                    cudaStream_t stream);

// x [batch, channels, plane] += bias[channel], then ReLU when `relu`.
// With `valid_frames` (device, [batch]; else nullptr), item b's columns
// t >= valid_frames[b] of each row of `frames` columns are set to zero
// instead (a padded item of a mixed-length batch).
cudaError_t LaunchBiasActivation(float* x, const float* bias, int batch,
                                 int channels, int64_t plane, int64_t frames,
                                 bool relu, const int32_t* valid_frames,
                                 cudaStream_t stream);

// x [batch, rows, frames] -> stats [batch, 2 * rows]: the means of all rows,
// then their unbiased standard deviations (NaN for one frame, as torch),
// accumulated in double; over item b's first valid_frames[b] frames when
// `valid_frames` (device, [batch]) is given, else all.
cudaError_t LaunchStatisticsPooling(const float* x, float* stats, int batch,
                                    int rows, int64_t frames,
                                    const int32_t* valid_frames,
                                    cudaStream_t stream);

// out [batch, out_dim] = in [batch, in_dim] * weight [out_dim, in_dim]^T +
// bias, accumulated in double.
cudaError_t LaunchLinear(const float* in, const float* weight,
                         const float* bias, float* out, int batch, int in_dim,
                         int out_dim, cudaStream_t stream);

// cudaSuccess when this build's kernels can run on the current device (else
// e.g. cudaErrorNoKernelImageForDevice: the GPU is older than the
// architectures compiled in).
cudaError_t CheckKernelsRunnable();

}  // namespace voxprint::backends::cuda
