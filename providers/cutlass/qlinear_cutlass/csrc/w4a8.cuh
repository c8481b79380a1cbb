// W4A8 on Hopper: int4 weights x FP8 E4M3 activations on the FP8 tensor cores, CUTLASS's sm90
// mixed-input mainloop (TMA warp-specialized, register-sourced wgmma) in its lookup-table mode
// (CUTLASS example 55's int4_fp8: scale type cutlass::Array<float_e4m3_t, 8>).
//
// As for W4A16 (w4a16.cuh) the GEMM runs transposed so the int4 operand takes the register path:
//   out^T [N, M] = W [N, K] . xq^T, with
//   A' = W, lookup-encoded int4 in the 8-bit re-laid order (w4a8_layout.h / w4a8_layout.py),
//   B' = xq [M, K] FP8 codes read as K x M column-major (rows as they are),
//   D' = out^T column-major, i.e. out [M, N] row-major, written by the TMA epilogue.
// Per weight element the mainloop takes e4m3(q * s_g) straight from the group's 8-byte table with
// prmt (no multiply, no conversion arithmetic), so the MMA is a plain FP8 x FP8 wgmma with fp32
// accumulation. The epilogue (an EVT) applies both remaining scales and the bias:
//   out[m, n] = chan_scale[n] * (token_scale[m] * acc[n, m]) + bias[n]
// chan_scale and bias are column broadcasts of D' (one per weight row), token_scale a row broadcast.
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

#include "mixed_input_tiles.h"
#include "w4a16_layout.h"
#include "w4a8_api.h"

namespace qlinear_cutlass {

using namespace cute;
namespace fusion = cutlass::epilogue::fusion;

template <class TileShape, class Out>
struct W4A8Epilogue {
  static constexpr auto RN = cutlass::FloatRoundStyle::round_to_nearest;
  using ChanScale = fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<_1, _0, int64_t>>;
  using TokenScale = fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, _1, int64_t>>;
  using Bias = fusion::Sm90ColBroadcast<0, TileShape, Out, Out, Stride<_1, _0, int64_t>>;  // null reads as 0
  using ScaledTok = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, float, float, RN>, TokenScale, fusion::Sm90AccFetch>;
  using Tree = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiply_add, Out, float, RN>, ChanScale, ScaledTok, Bias>;

  static typename Tree::Arguments args(W4A8Args const& p) {
    return typename Tree::Arguments{
        {p.chan_scale, 0.f, {}},
        {{p.token_scale, 0.f, {}}, {}, {}},
        {static_cast<Out const*>(p.bias), Out(0), {}},
        {}};
  }
};

template <class Out, class TileShape, class ClusterShape, class KernelSchedule, class EpilogueSchedule, class Scheduler>
struct W4A8Gemm {
  using ElementW = cutlass::int4b_t;
  using ElementX = cutlass::float_e4m3_t;
  using ElementScale = cutlass::Array<cutlass::float_e4m3_t, 8>;  // the lookup-table mode
  static constexpr int kAlignW = 128 / cutlass::sizeof_bits<ElementW>::value;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<ElementX>::value;
  static constexpr int kAlignD = 128 / cutlass::sizeof_bits<Out>::value;
  using Epi = W4A8Epilogue<TileShape, Out>;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::ColumnMajor, kAlignD,  // no C operand; D' = out^T is column-major
      Out, cutlass::layout::ColumnMajor, kAlignD, EpilogueSchedule, typename Epi::Tree>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      cute::tuple<ElementW, ElementScale>, W4A8Layout, kAlignW,
      ElementX, cutlass::layout::ColumnMajor, kAlignX,
      float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop, CollectiveEpilogue,
                                                      Scheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(W4A8Args const& p) {
    using StrideX = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    using StrideS = typename CollectiveMainloop::StrideScale;
    StrideX sx = cutlass::make_cute_packed_stride(StrideX{}, make_shape(p.m, p.k, 1));
    get<0>(sx) = p.lda;
    StrideD sd = cutlass::make_cute_packed_stride(StrideD{}, make_shape(p.n, p.m, 1));
    get<1>(sd) = p.ldd;
    StrideS ss = cutlass::make_cute_packed_stride(StrideS{}, make_shape(p.n, p.k / p.group, 1));
    typename CollectiveMainloop::Arguments mainloop{
        static_cast<ElementW const*>(p.w), w4a8_layout(p.n, p.k), static_cast<ElementX const*>(p.xq), sx,
        static_cast<ElementScale const*>(p.scale_lut), ss, p.group};
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {p.n, p.m, p.k, 1},
                                  mainloop,
                                  {Epi::args(p), nullptr, sd, static_cast<Out*>(p.out), sd}};
    args.hw_info.device_id = p.device;
    args.hw_info.sm_count = p.sm_count;
    return args;
  }

  static char const* run(W4A8Args const& p, cudaStream_t stream) {
    return run_gemm<Gemm>(arguments(p), p.workspace, p.workspace_bytes, stream,
                          "CUTLASS can_implement refused the problem (alignment, or group not a multiple of 128 / K?)");
  }

  static size_t workspace(W4A8Args const& p) { return Gemm::get_workspace_size(arguments(p)); }
};

// ---- tiles per M bucket (mixed_input_tiles.h): K tile 128 = 128 bytes of FP8 x; buckets in configs.py ----
namespace w4a8cfg {
using Epi = mixed_tiles::Epi;
using Small = mixed_tiles::Small<128>;
using Mid = mixed_tiles::Mid<128>;
using Large = mixed_tiles::Large<128>;
}  // namespace w4a8cfg

template <int Config> struct W4A8ConfigOf;
template <> struct W4A8ConfigOf<kW4A8Small> : w4a8cfg::Small {};
template <> struct W4A8ConfigOf<kW4A8Mid> : w4a8cfg::Mid {};
template <> struct W4A8ConfigOf<kW4A8Large> : w4a8cfg::Large {};

template <class Out, int Config>
using W4A8GemmOf = W4A8Gemm<Out, typename W4A8ConfigOf<Config>::Tile, typename W4A8ConfigOf<Config>::Cluster,
                            typename W4A8ConfigOf<Config>::Kernel, w4a8cfg::Epi, typename W4A8ConfigOf<Config>::Scheduler>;

template <class Out, int Config>
char const* w4a8_run(W4A8Args const& p, cudaStream_t stream) {
  return W4A8GemmOf<Out, Config>::run(p, stream);
}

template <class Out, int Config>
size_t w4a8_workspace(W4A8Args const& p) {
  return W4A8GemmOf<Out, Config>::workspace(p);
}

#define QLC_W4A8_INSTANTIATE(OUT, CONFIG)                                             \
  template char const* w4a8_run<OUT, CONFIG>(W4A8Args const&, cudaStream_t);          \
  template size_t w4a8_workspace<OUT, CONFIG>(W4A8Args const&);

}  // namespace qlinear_cutlass
