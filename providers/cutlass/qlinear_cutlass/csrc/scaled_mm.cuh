// W8A8 scaled GEMM on Hopper: one CUTLASS 3.x TMA warp-specialized kernel per (tile, A/B type, out type),
// the scales, zero-point correction and bias applied in the epilogue by an EVT (epilogue visitor tree).
//
//   FP8 : D[m, n] = a_s[m] * (b_s[n] * acc[m, n]) + bias[n]                     (acc fp32)
//   INT8: D[m, n] = a_s[m] * (b_s[n] * float(acc[m, n] - azp[m] * adj[n])) + bias[n]   (acc int32)
//
// a_s / azp are column broadcasts and b_s a row broadcast whose stride is a run-time bool: one
// instantiation serves per-tensor and per-token / per-channel. A null bias / azp / adj reads as 0 (the
// visitors' null fallback), so one INT8 kernel serves symmetric and asymmetric activations.
// This header is included by the per-family .cu files only; it never sees torch.
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

#include "scaled_mm_dispatch.h"

namespace qlinear_cutlass {

using namespace cute;
namespace fusion = cutlass::epilogue::fusion;

// ---- the epilogues ------------------------------------------------------------------------------
template <class TileShape, class ElementD>
struct FloatEpilogue {  // FP8: acc is fp32
  using ScaleA = fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<bool, _0, _0>>;
  using ScaleB = fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, bool, _0>>;
  using Bias = fusion::Sm90RowBroadcast<0, TileShape, ElementD, ElementD, Stride<_0, _1, _0>>;
  using Acc = fusion::Sm90AccFetch;
  using ScaledB = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
                                  ScaleB, Acc>;
  using Tree = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiply_add, ElementD, float, cutlass::FloatRoundStyle::round_to_nearest>,
                               ScaleA, ScaledB, Bias>;

  static typename Tree::Arguments args(ScaledMMArgs const& p) {
    using D = ElementD;
    return typename Tree::Arguments{
        {p.a_scale, 0.f, {p.a_per_row, {}, {}}},
        {{p.b_scale, 0.f, {{}, p.b_per_col, {}}}, {}, {}},
        {static_cast<D const*>(p.bias), D(0), {}},
        {}};
  }
};

template <class TileShape, class ElementD>
struct IntEpilogue {  // INT8: acc is int32, the zero-point correction is exact integer arithmetic
  using ScaleA = fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<bool, _0, _0>>;
  using ScaleB = fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, bool, _0>>;
  using Bias = fusion::Sm90RowBroadcast<0, TileShape, ElementD, ElementD, Stride<_0, _1, _0>>;
  using Azp = fusion::Sm90ColBroadcast<0, TileShape, int32_t, int32_t, Stride<bool, _0, _0>>;
  using AzpAdj = fusion::Sm90RowBroadcast<0, TileShape, int32_t, int32_t, Stride<_0, _1, _0>>;
  using Acc = fusion::Sm90AccFetch;
  static constexpr auto RN = cutlass::FloatRoundStyle::round_to_nearest;
  using AzpTerm = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, int32_t, int32_t, RN>, Azp, AzpAdj>;
  using Corrected = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::minus, float, int32_t, RN>, Acc, AzpTerm>;
  using ScaledB = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiplies, float, float, RN>, ScaleB, Corrected>;
  using Tree = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::multiply_add, ElementD, float, RN>, ScaleA, ScaledB, Bias>;

  static typename Tree::Arguments args(ScaledMMArgs const& p) {
    using D = ElementD;
    return typename Tree::Arguments{
        {p.a_scale, 0.f, {p.a_per_row, {}, {}}},
        {{p.b_scale, 0.f, {{}, p.b_per_col, {}}},
         {{}, {{p.azp, 0, {p.azp_per_row, {}, {}}}, {p.azp_adj, 0, {}}, {}}, {}},
         {}},
        {static_cast<D const*>(p.bias), D(0), {}},
        {}};
  }
};

// ---- one GEMM ----------------------------------------------------------------------------------
// A [M, K] row-major (K contiguous), B the weight [N, K] row-major (= K x N column-major), D [M, N].
template <class ElementAB, class ElementD, class TileShape, class ClusterShape, class KernelSchedule,
          class EpilogueSchedule>
struct ScaledGemm {
  static constexpr bool kInt = std::is_same_v<ElementAB, int8_t>;
  using ElementAcc = std::conditional_t<kInt, int32_t, float>;
  using Epi = std::conditional_t<kInt, IntEpilogue<TileShape, ElementD>, FloatEpilogue<TileShape, ElementD>>;
  static constexpr int kAlignAB = 16 / sizeof(ElementAB);
  static constexpr int kAlignD = 16 / sizeof(ElementD);

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc, float,
      void, cutlass::layout::RowMajor, kAlignD,  // no C operand: the bias is a broadcast
      ElementD, cutlass::layout::RowMajor, kAlignD, EpilogueSchedule, typename Epi::Tree>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      ElementAB, cutlass::layout::RowMajor, kAlignAB,
      ElementAB, cutlass::layout::ColumnMajor, kAlignAB,
      ElementAcc, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop, CollectiveEpilogue,
                                                      cutlass::gemm::PersistentScheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(ScaledMMArgs const& p) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    StrideA sa = cutlass::make_cute_packed_stride(StrideA{}, make_shape(p.m, p.k, 1));
    StrideB sb = cutlass::make_cute_packed_stride(StrideB{}, make_shape(p.n, p.k, 1));
    StrideD sd = cutlass::make_cute_packed_stride(StrideD{}, make_shape(p.m, p.n, 1));
    get<0>(sa) = p.lda;  // rows of A / D may be strided (a slice of a larger tensor)
    get<0>(sd) = p.ldd;
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {p.m, p.n, p.k, 1},
        {static_cast<ElementAB const*>(p.a), sa, static_cast<ElementAB const*>(p.b), sb},
        {Epi::args(p), nullptr, sd, static_cast<ElementD*>(p.d), sd}};
    args.hw_info.device_id = p.device;
    args.hw_info.sm_count = p.sm_count;
    return args;
  }

  // Returns nullptr on success, else a static message naming what CUTLASS refused.
  static char const* run(ScaledMMArgs const& p, cudaStream_t stream) {
    return run_gemm<Gemm>(arguments(p), p.workspace, p.workspace_bytes, stream);
  }

  static size_t workspace(ScaledMMArgs const& p) { return Gemm::get_workspace_size(arguments(p)); }
};

// ---- the tile configurations, one per M bucket (ids in scaled_mm_api.h) -------------------------
namespace cfg {
using namespace cutlass::gemm;
using EpiWS = cutlass::epilogue::TmaWarpSpecialized;
// M <= 64: 64-row tiles, a cluster of 8 along N shares (multicasts) the one A tile; weight-bandwidth bound.
template <class AB> struct Small {
  using Tile = Shape<_64, _64, _128>;
  using Cluster = Shape<_1, _8, _1>;
  using Kernel = KernelTmaWarpSpecialized;
  using Epi = EpiWS;
};
// 64 < M <= 128: 64x128 ping-pong tiles.
template <class AB> struct Mid {
  using Tile = Shape<_64, _128, _128>;
  using Cluster = Shape<_2, _1, _1>;
  using Kernel = std::conditional_t<std::is_same_v<AB, int8_t>, KernelTmaWarpSpecializedPingpong,
                                    KernelTmaWarpSpecializedPingpongFP8FastAccum>;
  using Epi = EpiWS;
};
// M > 128: 128x128 ping-pong tiles, cluster 2 along M (B multicast).
template <class AB> struct Large {
  using Tile = Shape<_128, _128, _128>;
  using Cluster = Shape<_2, _1, _1>;
  using Kernel = std::conditional_t<std::is_same_v<AB, int8_t>, KernelTmaWarpSpecializedPingpong,
                                    KernelTmaWarpSpecializedPingpongFP8FastAccum>;
  using Epi = EpiWS;
};
}  // namespace cfg

template <int Config, class AB> struct ConfigOf;
template <class AB> struct ConfigOf<kConfigSmall, AB> : cfg::Small<AB> {};
template <class AB> struct ConfigOf<kConfigMid, AB> : cfg::Mid<AB> {};
template <class AB> struct ConfigOf<kConfigLarge, AB> : cfg::Large<AB> {};

// The entry points declared in scaled_mm_dispatch.h; each scaled_mm_<family>_<out>_<tile>.cu
// instantiates one, so ninja compiles the GEMMs in parallel.
template <class AB, class D, int Config>
char const* run_config(ScaledMMArgs const& p, cudaStream_t stream) {
  using C = ConfigOf<Config, AB>;
  return ScaledGemm<AB, D, typename C::Tile, typename C::Cluster, typename C::Kernel, typename C::Epi>::run(p, stream);
}

template <class AB, class D, int Config>
size_t workspace_config(ScaledMMArgs const& p) {
  using C = ConfigOf<Config, AB>;
  return ScaledGemm<AB, D, typename C::Tile, typename C::Cluster, typename C::Kernel, typename C::Epi>::workspace(p);
}

#define QLC_INSTANTIATE(AB, D, CONFIG)                                                        \
  template char const* run_config<AB, D, CONFIG>(ScaledMMArgs const&, cudaStream_t);          \
  template size_t workspace_config<AB, D, CONFIG>(ScaledMMArgs const&);

}  // namespace qlinear_cutlass
