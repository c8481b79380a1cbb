// W4A16 / W8A16 on Hopper: CUTLASS's sm90 mixed-input mainloop (TMA warp-specialized, register-sourced
// wgmma) with int4 or int8 weights up-converted in registers and scaled per group (ConvertAndScale),
// plus an additive per-group zero term for AWQ-style int4 weights (ConvertAndScaleWithZero); and float
// codes with a scale per 16 or 32 k (NVFP4, MXFP4, MXFP8 weight-only: mixed_input_float.cuh).
//
// The narrow operand must take the register path, which CUTLASS puts on the MMA's A side, so the GEMM
// is run transposed (as CUTLASS example 55 does): out^T [N, M] = W [N, K] . x^T, with
//   A' = W, int4, in the re-laid order below (K-major [N, K] underneath),
//   B' = x [M, K] read as K x M column-major (x's rows as they are, no copy),
//   D' = out^T column-major, i.e. out [M, N] row-major, written by the TMA epilogue.
// The bias is per weight row, a column broadcast of D'. Per weight element the mainloop computes
//   w = int4(q) * scale[k / group, n] (+ zero[k / group, n])      in the activation dtype,
// then feeds wgmma; nothing dequantized ever goes back to memory.
//
// Weight order (w4a16_layout.py builds it once at load time): the 16x16 (N x K) atom of one warp's
// wgmma A fragment stored so each thread's 8 int4 values of a k-block are one 32-bit word, values
// interleaved [0,2,4,6,1,3,5,7] so CUTLASS's int4 -> 16-bit converter extracts two at a time with
// lop3 (its LayoutAwareConvert fast path). The atom is the layout CUTLASS's
// compute_memory_reordering_atom<16-bit, Layout<_1>, Layout<Shape<_2,_4>,Stride<_4,_1>>>() returns,
// written out here so the kernels do not include cutlass/util/mixed_dtype_utils.hpp (it pulls in
// curand); tests/providers/cutlass checks the two agree when nvcc is present. 8-bit codes use the same
// atom with 4 bytes per thread and k-block in CUTLASS's [3120] pair order (its int8 fast path).
#pragma once

#include <cuda_runtime.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "gemm_run.h"

#include "w4a16_api.h"
#include "mixed_input_float.cuh"
#include "mixed_input_tiles.h"
#include "w4a16_layout.h"

namespace qlinear_cutlass {

using namespace cute;
namespace fusion = cutlass::epilogue::fusion;

template <class TileShape, class Act>
struct W4BiasEpilogue {  // D' = acc + bias[row of D'] (= bias[n]); a null bias reads as 0
  using Bias = fusion::Sm90ColBroadcast<0, TileShape, Act, Act, Stride<_1, _0, int64_t>>;
  using Tree = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::plus, Act, float, cutlass::FloatRoundStyle::round_to_nearest>,
                               fusion::Sm90AccFetch, Bias>;
  static typename Tree::Arguments args(W4A16Args const& p) {
    return typename Tree::Arguments{{}, {static_cast<Act const*>(p.bias), Act(0), {}}, {}};
  }
};

template <class TileShape, class Act>
struct W4AlphaBiasEpilogue {  // D' = alpha acc + bias[n], alpha in fp32 (FP4 weights: the scales' power of two, 1 / global)
  using Alpha = fusion::Sm90ScalarBroadcast<float>;
  using Bias = fusion::Sm90ColBroadcast<0, TileShape, Act, Act, Stride<_1, _0, int64_t>>;
  using Tree = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::homogeneous_multiply_add, Act, float,
                                                   cutlass::FloatRoundStyle::round_to_nearest>,
                               Alpha, fusion::Sm90AccFetch, Bias>;
  static typename Tree::Arguments args(W4A16Args const& p) {
    return typename Tree::Arguments{{{p.alpha}, {nullptr}, {}}, {}, {static_cast<Act const*>(p.bias), Act(0), {}}, {}};
  }
};

// The narrow operand: its CUTLASS type, the order its codes are stored in (w4a16_layout.h), its scale
// type and the group CUTLASS sees (its scales come per 64-deep K tile at the finest).
struct Int4Weight {  // uint4b8 / uint4 codes become int4 by flipping bit 3 (q - 8), at load
  using Element = cutlass::int4b_t;
  template <class Act> using Scale = Act;
  template <class TileShape, class Act> using Epilogue = W4BiasEpilogue<TileShape, Act>;
  static W4Layout layout(int n, int k) { return w4_layout(n, k); }
  static int cutlass_group(int group) { return group; }
};
struct Int8Weight {  // uint8b128 / uint8 codes become int8 by flipping bit 7 (q - 128), at load
  using Element = cutlass::int8_t;
  template <class Act> using Scale = Act;
  template <class TileShape, class Act> using Epilogue = W4BiasEpilogue<TileShape, Act>;
  static W8Layout layout(int n, int k) { return w8_layout(n, k); }
  static int cutlass_group(int group) { return group; }
};
// Float codes in the integer codes' place (E2M1 in int4's, E4M3 in int8's), a group scale per kGroup k
// (NVFP4 16, MXFP4 / MXFP8 32) packed per K tile (mixed_input_float.cuh); the integer type only sizes
// the buffers, the specialization there decodes.
template <int kBits, int kGroup>
struct FloatWeight {
  using Element = std::conditional_t<kBits == 4, cutlass::int4b_t, cutlass::int8_t>;
  template <class Act> using Scale = SubScales<Act, 64 / kGroup>;
  template <class TileShape, class Act> using Epilogue = W4AlphaBiasEpilogue<TileShape, Act>;
  static auto layout(int n, int k) {
    if constexpr (kBits == 4) return w4_layout(n, k); else return w8_layout(n, k);
  }
  static int cutlass_group(int group) { return group == kGroup ? 64 : -1; }  // -1: can_implement refuses
};

template <class Weight, class Act, bool kZero, class TileShape, class ClusterShape, class KernelSchedule,
          class EpilogueSchedule, class Scheduler>
struct MixedInputGemm {
  using ElementW = typename Weight::Element;
  using WLayout = decltype(Weight::layout(0, 0));
  using ElementScale = typename Weight::template Scale<Act>;
  using WTuple = std::conditional_t<kZero, cute::tuple<ElementW, ElementScale, ElementScale>, cute::tuple<ElementW, ElementScale>>;
  static constexpr int kAlignW = 128 / cutlass::sizeof_bits<ElementW>::value;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<Act>::value;
  using Epi = typename Weight::template Epilogue<TileShape, Act>;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::ColumnMajor, kAlignX,  // no C operand; D' = out^T is column-major
      Act, cutlass::layout::ColumnMajor, kAlignX, EpilogueSchedule, typename Epi::Tree>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      WTuple, WLayout, kAlignW,
      Act, cutlass::layout::ColumnMajor, kAlignX,
      float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop, CollectiveEpilogue,
                                                      Scheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(W4A16Args const& p) {
    using StrideX = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    using StrideS = typename CollectiveMainloop::StrideScale;
    StrideX sx = cutlass::make_cute_packed_stride(StrideX{}, make_shape(p.m, p.k, 1));
    get<0>(sx) = p.lda;  // x's rows may be strided (a slice of a larger tensor)
    StrideD sd = cutlass::make_cute_packed_stride(StrideD{}, make_shape(p.n, p.m, 1));
    get<1>(sd) = p.ldd;
    const int group = Weight::cutlass_group(p.group);
    StrideS ss = cutlass::make_cute_packed_stride(StrideS{}, make_shape(p.n, group > 0 ? p.k / group : 1, 1));
    typename CollectiveMainloop::Arguments mainloop{
        static_cast<ElementW const*>(p.w), Weight::layout(p.n, p.k), static_cast<Act const*>(p.x), sx,
        static_cast<ElementScale const*>(p.scale), ss, group, static_cast<ElementScale const*>(p.zero)};
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {p.n, p.m, p.k, 1},
                                  mainloop,
                                  {Epi::args(p), nullptr, sd, static_cast<Act*>(p.out), sd}};
    args.hw_info.device_id = p.device;
    args.hw_info.sm_count = p.sm_count;
    return args;
  }

  static char const* run(W4A16Args const& p, cudaStream_t stream) {
    return run_gemm<Gemm>(arguments(p), p.workspace, p.workspace_bytes, stream,
                          "CUTLASS can_implement refused the problem (alignment, or group not a multiple of 64 / K?)");
  }

  static size_t workspace(W4A16Args const& p) { return Gemm::get_workspace_size(arguments(p)); }
};

// ---- tiles (weight rows x token rows x K 64 = 128 bytes of 16-bit x) ---------------------------
// From the H200 sweep (tools/cutlass_w4a16_tiles.py; figures in configs.py): the token side follows
// M, because the register-sourced wgmma computes the whole tile width whatever M is (a 256-token tile
// at M = 16 does 16x the work); 256 weight rows per tile on wide layers (gate_up, N = 28672), whose
// 128-row tiles would be 224+ CTAs each converting its own weights. Stream-K everywhere: it splits K
// over idle SMs when the output tiles do not fill the GPU (deterministic, fixed-order reduction).
namespace w4cfg {
using Epi = mixed_tiles::Epi;
template <int kN, int kM, int kCluster>
struct TileConfig {
  using Tile = Shape<Int<kN>, Int<kM>, _64>;
  using Cluster = Shape<Int<kCluster>, _1, _1>;
  using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
  using Scheduler = cutlass::gemm::StreamKScheduler;
};
}  // namespace w4cfg

template <int Config> struct W4ConfigOf;
template <> struct W4ConfigOf<kW4M16> : w4cfg::TileConfig<128, 16, 1> {};
template <> struct W4ConfigOf<kW4M16Wide> : w4cfg::TileConfig<256, 16, 1> {};
template <> struct W4ConfigOf<kW4M64> : w4cfg::TileConfig<128, 64, 2> {};
template <> struct W4ConfigOf<kW4M64Wide> : w4cfg::TileConfig<256, 64, 2> {};
template <> struct W4ConfigOf<kW4M128> : w4cfg::TileConfig<128, 128, 2> {};
template <> struct W4ConfigOf<kW4M128Wide> : w4cfg::TileConfig<256, 128, 2> {};
template <> struct W4ConfigOf<kW4M256> : w4cfg::TileConfig<128, 256, 2> {};

template <class Weight, class Act, bool kZero, int Config>
using MixedInputGemmOf = MixedInputGemm<Weight, Act, kZero, typename W4ConfigOf<Config>::Tile, typename W4ConfigOf<Config>::Cluster,
                                        typename W4ConfigOf<Config>::Kernel, w4cfg::Epi, typename W4ConfigOf<Config>::Scheduler>;

template <class Act, bool kZero, int Config>
char const* w4a16_run(W4A16Args const& p, cudaStream_t stream) {
  return MixedInputGemmOf<Int4Weight, Act, kZero, Config>::run(p, stream);
}

template <class Act, bool kZero, int Config>
size_t w4a16_workspace(W4A16Args const& p) {
  return MixedInputGemmOf<Int4Weight, Act, kZero, Config>::workspace(p);
}

template <class Act, int Config>
char const* w8a16_run(W4A16Args const& p, cudaStream_t stream) {
  return MixedInputGemmOf<Int8Weight, Act, false, Config>::run(p, stream);
}

template <class Act, int Config>
size_t w8a16_workspace(W4A16Args const& p) {
  return MixedInputGemmOf<Int8Weight, Act, false, Config>::workspace(p);
}

template <class Act, int kBits, int kGroup, int Config>
char const* float_run(W4A16Args const& p, cudaStream_t stream) {
  return MixedInputGemmOf<FloatWeight<kBits, kGroup>, Act, false, Config>::run(p, stream);
}

template <class Act, int kBits, int kGroup, int Config>
size_t float_workspace(W4A16Args const& p) {
  return MixedInputGemmOf<FloatWeight<kBits, kGroup>, Act, false, Config>::workspace(p);
}

#define QLC_FLOAT_INSTANTIATE(ACT, BITS, GROUP, CONFIG)                                         \
  template char const* float_run<ACT, BITS, GROUP, CONFIG>(W4A16Args const&, cudaStream_t);    \
  template size_t float_workspace<ACT, BITS, GROUP, CONFIG>(W4A16Args const&);

#define QLC_W8A16_INSTANTIATE(ACT, CONFIG)                                                      \
  template char const* w8a16_run<ACT, CONFIG>(W4A16Args const&, cudaStream_t);                \
  template size_t w8a16_workspace<ACT, CONFIG>(W4A16Args const&);

#define QLC_W4A16_INSTANTIATE(ACT, ZERO, CONFIG)                                               \
  template char const* w4a16_run<ACT, ZERO, CONFIG>(W4A16Args const&, cudaStream_t);          \
  template size_t w4a16_workspace<ACT, ZERO, CONFIG>(W4A16Args const&);

}  // namespace qlinear_cutlass
