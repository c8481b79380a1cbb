// The epilogue schedule of the mixed-input GEMMs, and the tile configurations per M bucket of W4A8
// (w4a8.cuh, K tile 128 = 128 bytes of FP8 x; W4A16 / W8A16 choose among seven of their own in
// w4a16.cuh, by M and N). Tiles are (weight rows of N) x
// (token rows of M) x K of the transposed GEMM; a cluster of 2 along the weight rows multicasts the x
// tile. With a single token tile there are only N / 128 output tiles (32 for N = 4096, on 132 SMs),
// so the two smaller buckets use the stream-K scheduler: K is split over idle SMs when its heuristic
// says so (a fixed-order, deterministic reduction of partial tiles in the workspace).
#pragma once

#include "cute/tensor.hpp"
#include "cutlass/epilogue/dispatch_policy.hpp"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/tile_scheduler.hpp"

namespace qlinear_cutlass::mixed_tiles {

using namespace cute;
using Epi = cutlass::epilogue::TmaWarpSpecializedCooperative;  // the epilogue that takes the transposed D

// M <= 64: 64 tokens per tile, stream-K.
template <int kTileK> struct Small {
  using Tile = Shape<_128, _64, Int<kTileK>>;
  using Cluster = Shape<_2, _1, _1>;
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using Scheduler = cutlass::gemm::StreamKScheduler;
};
// Mid M: 128 tokens per tile, stream-K.
template <int kTileK> struct Mid {
  using Tile = Shape<_128, _128, Int<kTileK>>;
  using Cluster = Shape<_2, _1, _1>;
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using Scheduler = cutlass::gemm::StreamKScheduler;
};
// Large M: 256 tokens per tile, so each int4 weight tile is converted once per 256 rows (persistent).
template <int kTileK> struct Large {
  using Tile = Shape<_128, _256, Int<kTileK>>;
  using Cluster = Shape<_2, _1, _1>;
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using Scheduler = cutlass::gemm::PersistentScheduler;
};

}  // namespace qlinear_cutlass::mixed_tiles
