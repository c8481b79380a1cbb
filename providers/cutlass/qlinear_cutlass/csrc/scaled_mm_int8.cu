// INT8 (s8 x s8 -> s32) scaled GEMMs: 3 tile configs x {bf16, fp16} out.
#include "scaled_mm.cuh"

namespace qlinear_cutlass {

char const* scaled_mm_int8(ScaledMMArgs const& p, cudaStream_t stream) {
  using S8 = int8_t;
  return p.out_type == kOutBF16 ? dispatch<S8, cutlass::bfloat16_t>(p, stream) : dispatch<S8, cutlass::half_t>(p, stream);
}

size_t scaled_mm_int8_workspace(ScaledMMArgs const& p) {
  using S8 = int8_t;
  return p.out_type == kOutBF16 ? dispatch_workspace<S8, cutlass::bfloat16_t>(p) : dispatch_workspace<S8, cutlass::half_t>(p);
}

}  // namespace qlinear_cutlass
