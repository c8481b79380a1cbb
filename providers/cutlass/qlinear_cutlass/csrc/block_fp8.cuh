// Block-scaled FP8 GEMM on Hopper (DeepSeek-V3 layout): activations in 1 x 128 groups, weights in
// 128 x 128 blocks, the scales applied per K block inside the mainloop (CUTLASS's sm90 FP8 blockwise
// collective promotes each 128-deep partial sum with a_s[m, kb] * w_s[nb, kb] into fp32), the bias in
// the epilogue:  D[m, n] = sum_kb a_s[m, kb] * w_s[n / 128, kb] * (q_a[m, kb] . q_w[n, kb]) + bias[n].
// Scale layouts: SFA M-major ([K/128, M_pad] contiguous in M; TMA wants M_pad % 4 == 0), SFB K-major
// (the as-loaded weight_scale_inv [N/128, K/128]).
#pragma once

#include <cuda_runtime.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/detail/blockwise_scale_layout.hpp"
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

template <class ElementD, class TileShape, class ClusterShape, class KernelSchedule, class EpilogueSchedule>
struct BlockFp8Gemm {
  using E4M3 = cutlass::float_e4m3_t;
  static constexpr int kAlignAB = 16;
  static constexpr int kAlignD = 16 / sizeof(ElementD);
  using ScaleConfig = cutlass::detail::Sm90BlockwiseScaleConfig<1, 128, 128, cute::GMMA::Major::MN, cute::GMMA::Major::K>;
  using LayoutSFA = decltype(ScaleConfig::deduce_layoutSFA());
  using LayoutSFB = decltype(ScaleConfig::deduce_layoutSFB());

  // epilogue: acc + bias[n] (a null bias reads as 0)
  using Bias = fusion::Sm90RowBroadcast<0, TileShape, ElementD, ElementD, Stride<_0, _1, _0>>;
  using Tree = fusion::Sm90EVT<fusion::Sm90Compute<cutlass::plus, ElementD, float, cutlass::FloatRoundStyle::round_to_nearest>,
                               fusion::Sm90AccFetch, Bias>;

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::RowMajor, kAlignD,
      ElementD, cutlass::layout::RowMajor, kAlignD, EpilogueSchedule, Tree>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      E4M3, cute::tuple<cutlass::layout::RowMajor, LayoutSFA>, kAlignAB,
      E4M3, cute::tuple<cutlass::layout::ColumnMajor, LayoutSFB>, kAlignAB,
      float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop, CollectiveEpilogue,
                                                      cutlass::gemm::PersistentScheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  // p.m is the padded row count (a multiple of 4; A, D and SFA are allocated for it).
  static typename Gemm::Arguments arguments(ScaledMMArgs const& p) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    StrideA sa = cutlass::make_cute_packed_stride(StrideA{}, make_shape(p.m, p.k, 1));
    StrideB sb = cutlass::make_cute_packed_stride(StrideB{}, make_shape(p.n, p.k, 1));
    StrideD sd = cutlass::make_cute_packed_stride(StrideD{}, make_shape(p.m, p.n, 1));
    get<0>(sa) = p.lda;
    get<0>(sd) = p.ldd;
    auto shape = make_shape(p.m, p.n, p.k, 1);
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {p.m, p.n, p.k, 1},
        {static_cast<E4M3 const*>(p.a), sa, static_cast<E4M3 const*>(p.b), sb,
         p.a_scale, ScaleConfig::tile_atom_to_shape_SFA(shape), p.b_scale, ScaleConfig::tile_atom_to_shape_SFB(shape)},
        {{{}, {static_cast<ElementD const*>(p.bias), ElementD(0), {}}, {}}, nullptr, sd, static_cast<ElementD*>(p.d), sd}};
    args.hw_info.device_id = p.device;
    args.hw_info.sm_count = p.sm_count;
    return args;
  }

  static char const* run(ScaledMMArgs const& p, cudaStream_t stream) {
    return run_gemm<Gemm>(arguments(p), p.workspace, p.workspace_bytes, stream);
  }

  static size_t workspace(ScaledMMArgs const& p) { return Gemm::get_workspace_size(arguments(p)); }
};

namespace block_cfg {
using namespace cutlass::gemm;
// M <= 64: 64-row ping-pong tiles (two consumer warpgroups alternate MMA and the scale promotion).
struct Small {
  using Tile = Shape<_64, _128, _128>;
  using Cluster = Shape<_1, _1, _1>;
  using Kernel = KernelTmaWarpSpecializedPingpongFP8Blockwise;
  using Epi = cutlass::epilogue::TmaWarpSpecialized;
};
// M > 64: 128x128 cooperative tiles, cluster 1x2 (the A tile multicast along N).
struct Large {
  using Tile = Shape<_128, _128, _128>;
  using Cluster = Shape<_1, _2, _1>;
  using Kernel = KernelTmaWarpSpecializedCooperativeFP8Blockwise;
  using Epi = cutlass::epilogue::TmaWarpSpecializedCooperative;
};
}  // namespace block_cfg

template <class D, int Config>
char const* run_block_config(ScaledMMArgs const& p, cudaStream_t stream) {
  using C = std::conditional_t<Config == kConfigSmall, block_cfg::Small, block_cfg::Large>;
  return BlockFp8Gemm<D, typename C::Tile, typename C::Cluster, typename C::Kernel, typename C::Epi>::run(p, stream);
}

template <class D, int Config>
size_t workspace_block_config(ScaledMMArgs const& p) {
  using C = std::conditional_t<Config == kConfigSmall, block_cfg::Small, block_cfg::Large>;
  return BlockFp8Gemm<D, typename C::Tile, typename C::Cluster, typename C::Kernel, typename C::Epi>::workspace(p);
}

#define QLC_INSTANTIATE_BLOCK(D, CONFIG)                                                        \
  template char const* run_block_config<D, CONFIG>(ScaledMMArgs const&, cudaStream_t);          \
  template size_t workspace_block_config<D, CONFIG>(ScaledMMArgs const&);

}  // namespace qlinear_cutlass
