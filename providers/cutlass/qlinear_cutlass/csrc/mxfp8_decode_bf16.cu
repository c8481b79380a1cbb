// mxfp8_decode: the float-code decode kernel (float_decode.cuh) of the mxfp8-bf16 extension, E4M3
// codes in the 8-bit order, a scale per 32 k, bf16 activations.
#include "float_decode.cuh"

namespace qlinear_cutlass {

char const* mxfp8_decode(W4A16DecodeArgs const& a, cudaStream_t stream) {
  if (a.gemm.act != kActBF16) return "the MXFP8 extension holds bfloat16 kernels only";
  if (a.gemm.group == 32) return w4a16_decode_impl::run_float<__nv_bfloat16, 8, 32>(a, stream);
  return "group: expected 32";
}

}  // namespace qlinear_cutlass
