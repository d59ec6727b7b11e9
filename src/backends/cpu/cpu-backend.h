// The oneDNN CPU backend (internal; the public entry is CreateBackend("cpu")).
//
// Exposed to tests and benchmarks for the knobs that the public options do
// not carry: the convolution algorithm and the time tiling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "voxprint/backend.h"

namespace voxprint::backends::cpu {

enum class ConvAlgorithm {
  kAuto,      // the validated per-layer rule (see cpu-backend.cc)
  kDirect,    // oneDNN direct convolution everywhere
  kWinograd,  // Winograd for every 3x3 stride-1 conv that supports it
};

enum class ActivationLayout {
  kAuto,       // nChw16c when some layer runs Winograd, else oneDNN's choice
  kAny,        // each primitive picks (format_tag::any)
  kBlocked16,  // nChw16c everywhere
};

// Where oneDNN offers both fp32 Winograd kernels (small batches), which
// one runs.
enum class WinogradKernelChoice {
  kMeasured,  // the faster on this CPU, timed once and cached
              // (winograd-choice.h)
  kF2x2,      // oneDNN's own first choice
  kF4x4,
};

struct CpuTuning {
  ConvAlgorithm algorithm = ConvAlgorithm::kAuto;
  ActivationLayout layout = ActivationLayout::kAuto;
  WinogradKernelChoice winograd_kernel = WinogradKernelChoice::kMeasured;
  // Inputs longer than this run as overlapping time tiles of tile_frames
  // input frames (same result: the halo covers the receptive field).
  int64_t max_untiled_frames = 6000;
  int64_t tile_frames = 4096;
  // Batches are split so that batch * frames per run stays below this
  // (bounds the activation memory of a session).
  int64_t max_batch_frames = 16384;
  // RunMixed batches inputs of similar length up to this many padded frames
  // per run (activation memory, as for the extractor's sliding windows),
  // padding each batch's inputs by at most max_mixed_padding of their frames.
  int64_t max_mixed_batch_frames = 6000;
  double max_mixed_padding = 0.25;
  // Compiled shapes each session keeps (least recently used dropped).
  int max_cached_shapes = 16;
  // kAuto uses Winograd for a layer only where its output has at least this
  // many positions (batch * rows * frames). Winograd's one-time weight
  // transform costs in proportion to the layer's weights, its saving in
  // proportion to weights * positions: on a single short input the deep
  // layers (few positions, many weights) would spend more on the transform
  // than they save, which start-up latency feels. 3 s (298 frames): the two
  // first stages (23840 and 5960 positions) run Winograd, the two last (1500
  // and 380) direct; 30 s, batches of windows and time tiles: every layer.
  // At 0 a repeated 1-3 s input runs ~40 % faster, but a new short length
  // first packs weight layouts of its own (+35-46 ms on 2 threads), which a
  // server meeting new lengths pays more often than it gains.
  int64_t min_winograd_positions = 2000;
};

std::unique_ptr<Backend> CreateCpuBackend(const BackendOptions& options,
                                          const CpuTuning& tuning = {});

// Whether this CPU runs bf16 convolutions natively (AVX512_BF16 or AMX), the
// condition for BackendOptions::precision "bf16" and "mixed" (else
// kInvalidArgument).
bool NativeBf16Available();

// Whether precision option `precision` runs convolutions of the cpu backend
// in bf16 ("bf16", "mixed"): options no other backend has.
bool PrecisionRunsBf16(const std::string& precision);

// Bytes of weights a prepared CPU model holds now: the plain f32 copies plus
// the reordered layouts that some live compiled shape uses (reordered lazily,
// freed with the last session shape using them). 0 for other backends.
// Thread-safe.
size_t PreparedWeightBytes(const PreparedModel& model);

// Per convolution of a prepared CPU model: "<layer>: <algorithm>" as used by
// the last shape a session compiled; for reports. Empty for other backends.
std::vector<std::string> LastLayerAlgorithms(const Session& session);

// Inputs per network run in the session's last RunMixed call, in the order
// run (1: an input run alone); for reports and tests. Empty for other
// backends.
std::vector<int> LastMixedRuns(const Session& session);

}  // namespace voxprint::backends::cpu
