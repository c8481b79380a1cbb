// W4A16 on Hopper: CUTLASS's sm90 mixed-input mainloop (TMA warp-specialized, register-sourced wgmma)
// with int4 weights up-converted in registers and scaled per group (ConvertAndScale), plus an additive
// per-group zero term for AWQ-style weights (ConvertAndScaleWithZero).
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
// curand); tests/providers/cutlass checks the two agree when nvcc is present.
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

template <class Act, bool kZero, class TileShape, class ClusterShape, class KernelSchedule, class EpilogueSchedule,
          class Scheduler>
struct W4A16Gemm {
  using ElementW = cutlass::int4b_t;  // uint4b8 codes become int4 by flipping bit 3 (q - 8), at load
  using ElementScale = Act;
  using WTuple = std::conditional_t<kZero, cute::tuple<ElementW, ElementScale, ElementScale>, cute::tuple<ElementW, ElementScale>>;
  static constexpr int kAlignW = 128 / cutlass::sizeof_bits<ElementW>::value;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<Act>::value;
  using Epi = W4BiasEpilogue<TileShape, Act>;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::ColumnMajor, kAlignX,  // no C operand; D' = out^T is column-major
      Act, cutlass::layout::ColumnMajor, kAlignX, EpilogueSchedule, typename Epi::Tree>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      WTuple, W4Layout, kAlignW,
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
    StrideS ss = cutlass::make_cute_packed_stride(StrideS{}, make_shape(p.n, p.k / p.group, 1));
    typename CollectiveMainloop::Arguments mainloop{
        static_cast<ElementW const*>(p.w), w4_layout(p.n, p.k), static_cast<Act const*>(p.x), sx,
        static_cast<ElementScale const*>(p.scale), ss, p.group, static_cast<ElementScale const*>(p.zero)};
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

// ---- tiles per M bucket (mixed_input_tiles.h): K tile 64 = 128 bytes of 16-bit x ----------------
namespace w4cfg {
using Epi = mixed_tiles::Epi;
using Small = mixed_tiles::Small<64>;  // M <= 64
using Mid = mixed_tiles::Mid<64>;      // M <= 512 (configs.py)
using Large = mixed_tiles::Large<64>;
}  // namespace w4cfg

template <int Config> struct W4ConfigOf;
template <> struct W4ConfigOf<kW4Small> : w4cfg::Small {};
template <> struct W4ConfigOf<kW4Mid> : w4cfg::Mid {};
template <> struct W4ConfigOf<kW4Large> : w4cfg::Large {};

template <class Act, bool kZero, int Config>
using W4A16GemmOf = W4A16Gemm<Act, kZero, typename W4ConfigOf<Config>::Tile, typename W4ConfigOf<Config>::Cluster,
                              typename W4ConfigOf<Config>::Kernel, w4cfg::Epi, typename W4ConfigOf<Config>::Scheduler>;

template <class Act, bool kZero, int Config>
char const* w4a16_run(W4A16Args const& p, cudaStream_t stream) {
  return W4A16GemmOf<Act, kZero, Config>::run(p, stream);
}

template <class Act, bool kZero, int Config>
size_t w4a16_workspace(W4A16Args const& p) {
  return W4A16GemmOf<Act, kZero, Config>::workspace(p);
}

#define QLC_W4A16_INSTANTIATE(ACT, ZERO, CONFIG)                                               \
  template char const* w4a16_run<ACT, ZERO, CONFIG>(W4A16Args const&, cudaStream_t);          \
  template size_t w4a16_workspace<ACT, ZERO, CONFIG>(W4A16Args const&);

}  // namespace qlinear_cutlass
