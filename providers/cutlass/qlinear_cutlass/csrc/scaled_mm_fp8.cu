// FP8 (e4m3 x e4m3 -> fp32) scaled GEMMs: 3 tile configs x {bf16, fp16} out.
#include "scaled_mm.cuh"

namespace qlinear_cutlass {

char const* scaled_mm_fp8(ScaledMMArgs const& p, cudaStream_t stream) {
  using E4M3 = cutlass::float_e4m3_t;
  return p.out_type == kOutBF16 ? dispatch<E4M3, cutlass::bfloat16_t>(p, stream) : dispatch<E4M3, cutlass::half_t>(p, stream);
}

size_t scaled_mm_fp8_workspace(ScaledMMArgs const& p) {
  using E4M3 = cutlass::float_e4m3_t;
  return p.out_type == kOutBF16 ? dispatch_workspace<E4M3, cutlass::bfloat16_t>(p) : dispatch_workspace<E4M3, cutlass::half_t>(p);
}

}  // namespace qlinear_cutlass
