// fp4_decode for bf16 activations: the float-code decode kernel (float_decode.cuh) of the fp4-bf16
// extension, NVFP4 (group 16) and MXFP4 (group 32).
#include "float_decode.cuh"

namespace qlinear_cutlass {

char const* fp4_decode(W4A16DecodeArgs const& a, cudaStream_t stream) {
  if (a.gemm.act != kActBF16) return "this extension holds the kernels of the other 16-bit activation dtype";
  if (a.gemm.group == 16) return w4a16_decode_impl::run_float<__nv_bfloat16, 4, 16>(a, stream);
  if (a.gemm.group == 32) return w4a16_decode_impl::run_float<__nv_bfloat16, 4, 32>(a, stream);
  return "group: expected 16 or 32";
}

}  // namespace qlinear_cutlass
