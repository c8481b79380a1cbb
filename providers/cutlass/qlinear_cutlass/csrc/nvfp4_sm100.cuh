// NVFP4 x NVFP4 on Blackwell datacenter GPUs (sm_100a: B200 / GB200): CUTLASS's SM100 block-scaled
// tensor-core GEMM (tcgen05 MMA with E4M3 scale factors per 16 elements, both operands through TMA,
// accumulator in tensor memory), as CUTLASS example 72a builds it, with the NVFP4 family's epilogue:
//   out[m, n] = alpha * (sum_k x[m, k] * w[n, k]) + bias[n],   alpha = 1 / (input_gs * weight_gs)
// alpha is read from device memory (a per-layer value; CUDA-graph safe), the bias is a per-column
// broadcast. Scale factors are in CUTLASS's Sm1xxBlockScaledConfig layout, which is the 128x4 tiled
// layout of qlinear.formats.swizzle (tests/providers/cutlass check the two agree on the host).
// UNVERIFIED: this project has no SM100 GPU; the source is compile-checked for sm_100a only.
#pragma once

#include <cuda_runtime.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/detail/sm100_blockscaled_layout.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "gemm_run.h"

#include "nvfp4_api.h"

namespace qlinear_cutlass {

using namespace cute;

template <class Out>
struct NvFp4Gemm {
  using ElementA = cutlass::nv_float4_t<cutlass::float_e2m1_t>;  // x: codes + E4M3 scale factors
  using ElementB = cutlass::nv_float4_t<cutlass::float_e2m1_t>;  // w
  static constexpr int kAlignAB = 32;                             // 16 bytes of E2M1
  static constexpr int kAlignD = 128 / cutlass::sizeof_bits<Out>::value;
  using MmaTile = Shape<_128, _128, _256>;                        // one SM per MMA (1SM tcgen05)
  using Cluster = Shape<_1, _1, _1>;
  using Fusion = cutlass::epilogue::fusion::LinCombPerColBias<Out, float, Out, Out, float>;  // alpha * acc + bias[n]

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm100, cutlass::arch::OpClassTensorOp, MmaTile, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, cutlass::layout::RowMajor, kAlignD,  // no C operand
      Out, cutlass::layout::RowMajor, kAlignD, cutlass::epilogue::collective::EpilogueScheduleAuto, Fusion>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm100, cutlass::arch::OpClassBlockScaledTensorOp,
      ElementA, cutlass::layout::RowMajor, kAlignAB,
      ElementB, cutlass::layout::ColumnMajor, kAlignAB,
      float, MmaTile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      cutlass::gemm::collective::KernelScheduleAuto>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop, CollectiveEpilogue, void>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using SfConfig = typename CollectiveMainloop::Sm1xxBlkScaledConfig;

  static typename Gemm::Arguments arguments(NvFp4Args const& p) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    using StrideD = typename Kernel::StrideD;
    StrideA sa = cutlass::make_cute_packed_stride(StrideA{}, make_shape(p.m, p.k, 1));
    StrideB sb = cutlass::make_cute_packed_stride(StrideB{}, make_shape(p.n, p.k, 1));
    StrideD sd = cutlass::make_cute_packed_stride(StrideD{}, make_shape(p.m, p.n, 1));
    get<0>(sd) = p.ldd;
    auto shape = make_shape(p.m, p.n, p.k, 1);
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {p.m, p.n, p.k, 1},
        {static_cast<typename ElementA::DataType const*>(p.xq), sa, static_cast<typename ElementB::DataType const*>(p.w), sb,
         static_cast<typename ElementA::ScaleFactorType const*>(p.x_sf), SfConfig::tile_atom_to_shape_SFA(shape),
         static_cast<typename ElementB::ScaleFactorType const*>(p.w_sf), SfConfig::tile_atom_to_shape_SFB(shape)},
        {{}, nullptr, sd, static_cast<Out*>(p.out), sd}};
    args.epilogue.thread.alpha_ptr = p.alpha;
    args.epilogue.thread.bias_ptr = static_cast<Out const*>(p.bias);
    args.hw_info.device_id = p.device;
    args.hw_info.sm_count = p.sm_count;
    return args;
  }

  static char const* run(NvFp4Args const& p, cudaStream_t stream) {
    return run_gemm<Gemm>(arguments(p), p.workspace, p.workspace_bytes, stream);
  }

  static size_t workspace(NvFp4Args const& p) { return Gemm::get_workspace_size(arguments(p)); }
};

}  // namespace qlinear_cutlass
