// Float codes on the W4A16 / W8A16 GEMM (w4a16.cuh): NVFP4 (E2M1, a scale per 16 k), MXFP4 (E2M1, per
// 32 k) and MXFP8 (E4M3, per 32 k) weight-only, through CUTLASS's sm90 mixed-input mainloop, which
// otherwise takes one scale per weight row and 64-deep K tile at the finest (its K tile must hold whole
// groups, and it needs four 16-deep k-blocks per tile).
//
// How, without a mainloop of our own: the scale "element" CUTLASS loads per (weight row, K tile) is a
// packet of that tile's kSub group scales (SubScales: 4 for groups of 16, 2 for groups of 32), so the
// TMA box, the pipeline and the shared-memory layout of the scales stay CUTLASS's, at group 64 as far
// as it knows. What a packet means is said here, by a partial specialization of CUTLASS's extension
// point for the mainloop's operand handling (detail::MixedInputUtils) for mainloops whose scale type
// is a SubScales. It differs from the stock ConvertAndScale path only in dequantize_A_kblock: one
// 16-deep k-block of the wgmma A fragment lies inside one group, so k-block j of a tile takes
// sub-scale j * kSub / 4 of the row's packet, and the codes are floats, not integers.
//
// Float code -> 16-bit without arithmetic (float_code_bits.h): value * 2^-bias. The stored scales carry 2^a
// (qlinear.formats.codes.code_scales) and the epilogue multiplies by 2^(bias - a) (and NVFP4's 1 /
// global scale) in fp32, so a weight is value * scale rounded once to the activation type, then exact
// fp32 sums scaled once.
//
// Codes sit where the integer codes of their width sit (the same re-laid order, w4a16_layout.py):
// 4-bit: each thread's 8 codes of a k-block are one 32-bit word, values interleaved [0,2,4,6,1,3,5,7],
// so `word >> 4i` holds values 2i and 2i+1 at bits [0, 4) and [16, 20); 8-bit: 4 codes a word in
// [0,2,1,3] byte order, so `word >> 8i` holds values 2i and 2i+1 at bits [0, 8) and [16, 24). One pair,
// one row, adjacent k: one output register and one scale.
#pragma once

#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cute/tensor.hpp"
#include "cutlass/detail/collective/mixed_input_utils.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"

#include "float_code_bits.h"

namespace qlinear_cutlass {

// The kSub group scales of one (weight row, 64-deep K tile), in the activation type.
template <class T, int kSub>
struct alignas(sizeof(T) * kSub) SubScales {
  T v[kSub];
};

}  // namespace qlinear_cutlass

namespace cutlass::gemm::collective::detail {

template <int Stages, class ClusterShape, class Schedule, class TileShape, class ElementA, class Act, int kSub,
          class StrideA, class ElementB, class StrideB, class TiledMma, class GmemCopyA, class SmemAtomA,
          class SmemCopyA, class TransformA, class GmemCopyB, class SmemAtomB, class SmemCopyB, class TransformB>
struct MixedInputUtils<CollectiveMma<MainloopSm90TmaGmmaRmemAWarpSpecializedMixedInput<Stages, ClusterShape, Schedule>,
                                     TileShape, cute::tuple<ElementA, qlinear_cutlass::SubScales<Act, kSub>>, StrideA,
                                     ElementB, StrideB, TiledMma, GmemCopyA, SmemAtomA, SmemCopyA, TransformA,
                                     GmemCopyB, SmemAtomB, SmemCopyB, TransformB>> {
 private:
  using Collective = CollectiveMma<MainloopSm90TmaGmmaRmemAWarpSpecializedMixedInput<Stages, ClusterShape, Schedule>,
                                   TileShape, cute::tuple<ElementA, qlinear_cutlass::SubScales<Act, kSub>>, StrideA,
                                   ElementB, StrideB, TiledMma, GmemCopyA, SmemAtomA, SmemCopyA, TransformA, GmemCopyB,
                                   SmemAtomB, SmemCopyB, TransformB>;
  using SmemLayoutA = typename Collective::SmemLayoutA;
  using SmemLayoutB = typename Collective::SmemLayoutB;
  using SmemLayoutScale = typename Collective::SmemLayoutScale;
  using ElementScale = typename Collective::ElementScale;
  using SmemCopyAtomScale = typename Collective::SmemCopyAtomScale;
  static_assert(Collective::KernelConversionMode == cutlass::detail::ConversionMode::ConvertAndScale,
                "float-code weights take scales and no zero points");
  static constexpr int kBits = cute::sizeof_bits_v<typename Collective::SwappedElementA>;
  static_assert(kBits == 4 || kBits == 8, "float codes are E2M1 (4-bit) or E4M3 (8-bit)");
  static constexpr int kBlocks = cute::size<2>(TileShape{}) / 16;  // 16-deep k-blocks per K tile
  static_assert(kBlocks % kSub == 0, "a K tile must hold whole groups of whole k-blocks");

 public:
  static constexpr auto elements_per_smem_scale() { return cute::cosize_v<SmemLayoutScale>; }
  static constexpr auto elements_per_smem_zero() { return 0; }

  static constexpr uint32_t compute_tma_transaction_bytes_mk() {
    return cutlass::bits_to_bytes(cute::size<0>(SmemLayoutA{}) * cute::size<1>(SmemLayoutA{}) *
                                  static_cast<uint32_t>(cute::sizeof_bits_v<typename Collective::SwappedElementA>));
  }
  static constexpr uint32_t compute_tma_transaction_bytes_nk() {
    return cutlass::bits_to_bytes(cute::size<0>(SmemLayoutB{}) * cute::size<1>(SmemLayoutB{}) *
                                  static_cast<uint32_t>(cute::sizeof_bits_v<typename Collective::SwappedElementB>));
  }
  static constexpr uint32_t compute_tma_transaction_bytes_extra() {
    constexpr uint32_t bytes = cutlass::bits_to_bytes(cute::size<0>(SmemLayoutScale{}) * cute::size<1>(SmemLayoutScale{}) *
                                                      static_cast<uint32_t>(cute::sizeof_bits_v<ElementScale>));
    static_assert(bytes % 128 == 0, "TMA: each stage's scale packets must be a multiple of 128 bytes");
    return bytes;
  }

  // The producer's view: this CTA's packet column per K tile, global -> shared through TMA.
  template <class Params, class TensorStorage, class... Ts>
  CUTLASS_DEVICE static auto partition_extra_tma_inputs(Params const& params, cute::tuple<Ts...> const& load_inputs,
                                                        TensorStorage& shared, uint2 const& cluster_local_block_id,
                                                        int const m_coord, int const l_coord) {
    using namespace cute;
    Tensor sS = make_tensor(make_smem_ptr(shared.smem_scale.begin()), SmemLayoutScale{});  // (BLK_M, 1, PIPE)
    Tensor gS = get<2>(load_inputs)(_, _, m_coord, _, l_coord);                               // (BLK_M, 1, k)
    auto tma = params.tma_load_scale.get_slice(cluster_local_block_id.y);
    return make_tuple(tma.partition_S(gS), tma.partition_D(sS));
  }

  // The consumers' view: packets per A-fragment element (broadcast along k), and the registers they go to.
  template <class ThreadMma, class TensorStorage>
  CUTLASS_DEVICE static auto partition_extra_mma_info(ThreadMma const& mma_thread_slice, TensorStorage& shared) {
    using namespace cute;
    Tensor sS = make_tensor(make_smem_ptr(shared.smem_scale.begin()), SmemLayoutScale{});
    Tensor tCsS = mma_thread_slice.partition_A(sS);
    Tensor tCrS = make_tensor<ElementScale>(mma_thread_slice.partition_fragment_A(sS(_, _, Int<0>{})).layout());
    return make_tuple(tCsS, tCrS);
  }

  template <class Mma, class... Ts>
  CUTLASS_DEVICE static auto retile_extra_mma_info(Mma const& tiled_mma, cute::tuple<Ts...>& extra, int const thread_idx) {
    auto copy = cute::make_tiled_copy_A(SmemCopyAtomScale{}, tiled_mma);
    return cute::make_tuple(copy, copy.get_thread_slice(thread_idx).retile_D(cute::get<1>(extra)));
  }

  // A's k-block from shared memory to registers; the tile's packets with its first k-block.
  template <class SmemTiledCopyA, class TensorASmem, class TensorACopy, class... Ts, class... Us>
  CUTLASS_DEVICE static void copy_tensors_MK(SmemTiledCopyA const& smem_tiled_copy_A, TensorASmem const& tCsA,
                                             TensorACopy& tCrA_copy_view, cute::tuple<Ts...> const& extra,
                                             cute::tuple<Us...> const& copies, int k_block, int read_stage) {
    using namespace cute;
    copy(smem_tiled_copy_A, tCsA(_, _, k_block, read_stage), tCrA_copy_view(_, _, k_block));
    if (k_block == 0) {
      auto view = get<1>(copies);
      copy(get<0>(copies), get<0>(extra)(_, _, k_block, read_stage), view(_, _, k_block));
    }
  }

  // k-block `k_block` of the codes -> the wgmma's 16-bit A fragment: codes placed, times the group's scale.
  template <class EngineIn, class LayoutIn, class EngineOut, class LayoutOut, class... Ts>
  CUTLASS_DEVICE static void dequantize_A_kblock(cute::Tensor<EngineIn, LayoutIn> const& tCrA_load,
                                                 cute::Tensor<EngineOut, LayoutOut>& tCrA_mma,
                                                 cute::tuple<Ts...>& extra, int const k_block) {
    using namespace cute;
    using Dst = typename EngineOut::value_type;
    static_assert(is_same_v<Dst, Act>, "the scales are in the activation type");
    constexpr bool kBf16 = is_same_v<Act, cutlass::bfloat16_t>;
    using H = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    using T2 = std::conditional_t<kBf16, __nv_bfloat162, __half2>;
    constexpr int kPerWord = 32 / kBits;  // codes in one 32-bit register: 8 E2M1, 4 E4M3
    constexpr int kPairs = kPerWord / 2;  // output registers per word
    using Regs = cutlass::AlignedArray<uint32_t, kPairs, 4 * kPairs>;
    // the order CUTLASS's converters expect (w4a16_layout.py): E2M1 [0,2,4,6,1,3,5,7], E4M3 [0,2,1,3]
    using WordOrder = std::conditional_t<kBits == 4, Layout<Shape<_2, _4>, Stride<_4, _1>>, Layout<Shape<_2, _2>, Stride<_2, _1>>>;

    Tensor src = tCrA_load(_, _, k_block);
    Tensor dst = tCrA_mma(_, _, k_block);
    Tensor scales = get<1>(extra)(_, _, k_block);
    Tensor src_v = group_modes<1, -1>(zipped_divide(src, Int<kPerWord>{}));  // (codes of a word, words)
    Tensor dst_v = group_modes<1, -1>(zipped_divide(dst, Int<kPerWord>{}));
    Tensor s_v = group_modes<1, -1>(zipped_divide(scales, Int<kPerWord>{}));
    const int sub = k_block * kSub / kBlocks;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < size<1>(dst_v); ++i) {
      Tensor sw = coalesce(src_v(_, i));
      Tensor dw = coalesce(dst_v(_, i));
      static_assert(is_same_v<decltype(sw.layout()), WordOrder>, "codes must be in the re-laid weight's word order");
      static_assert(is_same_v<decltype(dw.layout()), Layout<Int<kPerWord>, _1>>, "the A fragment's values must be contiguous");
      const uint32_t word = recast<uint32_t>(sw)(0);
      auto&& r = recast<Regs>(dw)(0);
      CUTLASS_PRAGMA_UNROLL
      for (int ii = 0; ii < kPairs; ++ii) {
        const Act s = s_v(2 * ii, i).v[sub];  // values 2ii and 2ii+1: one row, adjacent k
        T2 s2;
        s2.x = reinterpret_cast<H const&>(s);
        s2.y = s2.x;
        uint32_t raw = kBits == 4 ? qlinear_cutlass::e2m1_pair_raw<kBf16>(word >> (4 * ii))
                                  : qlinear_cutlass::e4m3_pair_raw<kBf16>(word >> (8 * ii));
        T2 v = __hmul2(reinterpret_cast<T2 const&>(raw), s2);
        r[ii] = reinterpret_cast<uint32_t const&>(v);
      }
    }
  }
};

}  // namespace cutlass::gemm::collective::detail
