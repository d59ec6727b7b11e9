#include <cmath>

#include "cuda-kernels.h"

namespace voxprint::backends::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void TransposeFeaturesKernel(const float* features, float* image,
                                        int64_t frames, int bins,
                                        int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // i indexes the output [b][f][t].
    const int64_t t = i % frames;
    const int64_t bf = i / frames;
    const int64_t f = bf % bins;
    const int64_t b = bf / bins;
    image[i] = features[(b * frames + t) * bins + f];
  }
}

__global__ void BiasActivationKernel(float* x, const float* bias, int channels,
                                     int64_t plane, int64_t frames, bool relu,
                                     const int32_t* valid_frames,
                                     int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t bc = i / plane;
    const int c = static_cast<int>(bc % channels);
    if (valid_frames != nullptr && i % frames >= valid_frames[bc / channels]) {
      x[i] = 0.0f;  // past the item's own length: the padding it sees alone
      continue;
    }
    const float v = x[i] + bias[c];
    x[i] = relu ? fmaxf(v, 0.0f) : v;
  }
}

// Sum over the block; every thread gets the result.
__device__ double BlockSum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  const double sum = shared[0];
  __syncthreads();
  return sum;
}

// One block per (batch item, row); two passes (mean, then squared deviations)
// as the reference computes them.
__global__ void StatisticsPoolingKernel(const float* x, float* stats, int rows,
                                        int64_t stride,
                                        const int32_t* valid_frames) {
  __shared__ double shared[kThreads];
  const int row = blockIdx.x;
  const int b = blockIdx.y;
  const float* in = x + (static_cast<int64_t>(b) * rows + row) * stride;
  const int64_t frames = valid_frames != nullptr ? valid_frames[b] : stride;
  double sum = 0;
  for (int64_t t = threadIdx.x; t < frames; t += blockDim.x) sum += in[t];
  const double mean = BlockSum(sum, shared) / static_cast<double>(frames);
  double m2 = 0;
  for (int64_t t = threadIdx.x; t < frames; t += blockDim.x) {
    const double d = in[t] - mean;
    m2 += d * d;
  }
  m2 = BlockSum(m2, shared);
  if (threadIdx.x == 0) {
    float* out = stats + static_cast<int64_t>(b) * 2 * rows;
    out[row] = static_cast<float>(mean);
    // 0/0 = NaN for a single frame, like torch's unbiased std.
    out[rows + row] =
        static_cast<float>(sqrt(m2 / static_cast<double>(frames - 1)));
  }
}

// One block per (batch item, output).
__global__ void LinearKernel(const float* in, const float* weight,
                             const float* bias, float* out, int in_dim,
                             int out_dim) {
  __shared__ double shared[kThreads];
  const int o = blockIdx.x;
  const int b = blockIdx.y;
  const float* x = in + static_cast<int64_t>(b) * in_dim;
  const float* w = weight + static_cast<int64_t>(o) * in_dim;
  double acc = 0;
  for (int k = threadIdx.x; k < in_dim; k += blockDim.x)
    acc += static_cast<double>(w[k]) * x[k];
  acc = BlockSum(acc, shared);
  if (threadIdx.x == 0)
    out[static_cast<int64_t>(b) * out_dim + o] =
        static_cast<float>(acc + bias[o]);
}

unsigned GridFor(int64_t total) {
  // Grid-stride loops: a bounded grid covers any size.
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1)
                                              : 65535);
}

}  // namespace

cudaError_t LaunchTransposeFeatures(const float* features, float* image,
                                    int batch, int64_t frames, int bins,
                                    cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(batch) * frames * bins;
  TransposeFeaturesKernel<<<GridFor(total), kThreads, 0, stream>>>(
      features, image, frames, bins, total);
  return cudaGetLastError();
}

cudaError_t LaunchBiasActivation(float* x, const float* bias, int batch,
                                 int channels, int64_t plane, int64_t frames,
                                 bool relu, const int32_t* valid_frames,
                                 cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(batch) * channels * plane;
  BiasActivationKernel<<<GridFor(total), kThreads, 0, stream>>>(
      x, bias, channels, plane, frames, relu, valid_frames, total);
  return cudaGetLastError();
}

cudaError_t LaunchStatisticsPooling(const float* x, float* stats, int batch,
                                    int rows, int64_t frames,
                                    const int32_t* valid_frames,
                                    cudaStream_t stream) {
  StatisticsPoolingKernel<<<dim3(rows, batch), kThreads, 0, stream>>>(
      x, stats, rows, frames, valid_frames);
  return cudaGetLastError();
}

cudaError_t LaunchLinear(const float* in, const float* weight,
                         const float* bias, float* out, int batch, int in_dim,
                         int out_dim, cudaStream_t stream) {
  LinearKernel<<<dim3(out_dim, batch), kThreads, 0, stream>>>(
      in, weight, bias, out, in_dim, out_dim);
  return cudaGetLastError();
}

cudaError_t CheckKernelsRunnable() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, StatisticsPoolingKernel);
}

}  // namespace voxprint::backends::cuda
