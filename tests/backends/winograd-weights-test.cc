// voxprint's Winograd weight transform against oneDNN's own reorder, for
// every Winograd layout oneDNN chooses at the network's layer shapes (several
// input lengths and batch sizes block the weights differently): the packed
// buffers must hold the same numbers at the same places.
#include "backends/cpu/winograd-weights.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <dnnl.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace voxprint {
namespace {

using backends::cpu::CanPackWinogradWeights;
using backends::cpu::PackWinogradWeights;
using dnnl::memory;

struct LayerShape {
  int batch, channels, rows, columns;
};

// The trunk's 3x3 stride-1 layers (32..256 channels, 80..10 frequency rows)
// at lengths from 1 s to a 30 s tile, single inputs and batches of windows.
std::vector<LayerShape> NetworkShapes() {
  std::vector<LayerShape> shapes;
  for (int frames : {98, 148, 298, 1298, 2098, 2998})
    for (int stage = 0; stage < 4; ++stage)
      for (int batch : {1, 32}) {
        if (batch == 32 && frames > 298) continue;
        shapes.push_back({batch, 32 << stage, 80 >> stage,
                          std::max(1, (frames + (1 << stage) - 1) >> stage)});
      }
  return shapes;
}

// Every Winograd weight layout oneDNN offers for `shape` (one per
// implementation that takes convolution_winograd).
std::vector<memory::desc> WinogradWeightLayouts(const LayerShape& shape,
                                                const dnnl::engine& engine) {
  const memory::dims data = {shape.batch, shape.channels, shape.rows,
                             shape.columns};
  const memory::dims weights = {shape.channels, shape.channels, 3, 3};
  const memory::desc any_data(data, memory::data_type::f32,
                              memory::format_tag::any);
  const memory::desc any_weights(weights, memory::data_type::f32,
                                 memory::format_tag::any);
  std::vector<memory::desc> layouts;
  try {
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                         dnnl::algorithm::convolution_winograd,
                                         any_data, any_weights, any_data,
                                         {1, 1}, {1, 1}, {1, 1});
    dnnl::convolution_forward::primitive_desc pd(desc, engine);
    do {
      if (pd.weights_desc().data.format_kind == dnnl_format_kind_wino)
        layouts.push_back(pd.weights_desc());
    } while (pd.next_impl());
  } catch (const dnnl::error&) {
    // No Winograd implementation for this shape on this CPU.
  }
  return layouts;
}

std::string Describe(const memory::desc& layout, const LayerShape& shape) {
  const dnnl_wino_desc_t& w = layout.data.format_desc.wino_desc;
  return "batch " + std::to_string(shape.batch) + ", " +
         std::to_string(shape.channels) + " channels, " +
         std::to_string(shape.rows) + "x" + std::to_string(shape.columns) +
         ": format " + std::to_string(w.wino_format) + " alpha " + std::to_string(w.alpha) + " blocks ic " +
         std::to_string(w.ic_block) + "/" + std::to_string(w.ic2_block) +
         " oc " + std::to_string(w.oc_block) + "/" +
         std::to_string(w.oc2_block);
}

TEST(WinogradWeights, SameNumbersInTheSamePlacesAsOneDnnsReorder) {
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  std::mt19937 random(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::set<std::vector<int>> seen;  // layouts already compared
  int compared = 0;
  for (const LayerShape& shape : NetworkShapes()) {
    for (const memory::desc& layout : WinogradWeightLayouts(shape, engine)) {
      const dnnl_wino_desc_t& w = layout.data.format_desc.wino_desc;
      if (!seen.insert({w.wino_format, w.alpha, w.ic, w.oc, w.ic_block,
                        w.oc_block, w.ic2_block, w.oc2_block})
               .second)
        continue;
      ASSERT_TRUE(CanPackWinogradWeights(layout.data))
          << "oneDNN chose a layout voxprint cannot write: "
          << Describe(layout, shape);
      std::vector<float> oihw(static_cast<size_t>(shape.channels) *
                              shape.channels * 9);
      for (float& value : oihw) value = normal(random);
      memory plain({{shape.channels, shape.channels, 3, 3},
                    memory::data_type::f32,
                    memory::format_tag::oihw},
                   engine, oihw.data());
      memory by_onednn(layout, engine);
      dnnl::reorder(plain, by_onednn).execute(stream, plain, by_onednn);
      stream.wait();
      std::vector<float> ours(layout.get_size() / sizeof(float), -1.0f);
      PackWinogradWeights(oihw.data(), shape.channels, shape.channels,
                          layout.data, ours.data());
      const float* theirs =
          static_cast<const float*>(by_onednn.get_data_handle());
      float largest = 0.0f, worst = 0.0f;
      size_t worst_at = 0;
      for (size_t i = 0; i < ours.size(); ++i) {
        largest = std::max(largest, std::fabs(theirs[i]));
        const float difference = std::fabs(ours[i] - theirs[i]);
        if (difference > worst) worst = difference, worst_at = i;
      }
      // The same sums in the same order: bit-identical with GCC 12 on
      // x86-64; a compiler that fuses multiply-adds may move the last bit.
      EXPECT_LE(worst, 1e-6f * largest)
          << Describe(layout, shape) << ": element " << worst_at << " is "
          << ours[worst_at] << ", oneDNN's " << theirs[worst_at];
      ++compared;
    }
  }
  if (compared == 0)
    GTEST_SKIP() << "oneDNN has no fp32 Winograd kernel on this CPU "
                    "(it needs AVX-512)";
  RecordProperty("layouts_compared", compared);
}

TEST(WinogradWeights, RefusesWhatItCannotWrite) {
  memory::desc plain({32, 32, 3, 3}, memory::data_type::f32,
                     memory::format_tag::oihw);
  EXPECT_FALSE(CanPackWinogradWeights(plain.data));
  memory::desc bf16({32, 32, 3, 3}, memory::data_type::bf16,
                    memory::format_tag::oihw);
  EXPECT_FALSE(CanPackWinogradWeights(bf16.data));
}

}  // namespace
}  // namespace voxprint
