// Which of oneDNN's two fp32 Winograd kernels runs this CPU's convolutions
// faster, measured once per CPU model and remembered on disk.
//
// oneDNN 2.6 offers F(2x2, 3x3) ("jit_fp32_wino_2x3") first for small
// batches and F(4x4, 3x3) ("jit_wino_4x3") after it. Which is faster depends
// on the CPU, not on the shape: on an Intel Xeon (2 MiB L2 per core) F(4x4)
// runs a whole 30 s file's network in 0.58x the time of F(2x2), while
// batched windows, which get F(4x4) anyway, cost the same. The measurement
// times both on the first trunk layer's shape (the largest share of the
// network) with the caller's thread count.
#pragma once

#include <dnnl.hpp>
#include <filesystem>
#include <optional>
#include <string>

namespace voxprint::backends::cpu {

enum class WinogradKernel {
  kF2x2,  // oneDNN's first choice for small batches
  kF4x4,
};

// The faster kernel on this CPU at `num_threads` threads: from the cache
// file when it holds this CPU (model, ISA, oneDNN version, threads), else
// timed now (~0.1 s) and written there. Thread-safe; one measurement per
// process and thread count at most. A cache that cannot be read or written
// only costs the measurement.
WinogradKernel FasterWinogradKernel(int num_threads);

// What identifies this CPU and library in the cache: vendor, family, model,
// model name, oneDNN's ISA and version.
std::string CpuIdentity();

// $VOXPRINT_CACHE_DIR/cpu-kernels.txt, else under $XDG_CACHE_HOME/voxprint,
// else ~/.cache/voxprint; empty when VOXPRINT_CACHE_DIR is "off" or no
// directory can be named.
std::filesystem::path WinogradCachePath();

// What FasterWinogradKernel does once per thread count: the cached answer
// in the file at `cache` (empty: no file), else a measurement written there.
WinogradKernel CachedOrTimedWinogradKernel(const std::filesystem::path& cache,
                                           int num_threads);

// Times the two kernels now.
WinogradKernel TimeWinogradKernels(int num_threads);

const char* WinogradKernelName(WinogradKernel kernel);

// Whether `pd` runs oneDNN's F(2x2, 3x3) kernel.
bool IsF2x2Winograd(const dnnl::convolution_forward::primitive_desc& pd);

// The F(4x4, 3x3) implementation of `desc`, when oneDNN has one for it.
std::optional<dnnl::convolution_forward::primitive_desc> F4x4Winograd(
    const dnnl::convolution_forward::desc& desc,
    const dnnl::primitive_attr& attr, const dnnl::engine& engine);

}  // namespace voxprint::backends::cpu
