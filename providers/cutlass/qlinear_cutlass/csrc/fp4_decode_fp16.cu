// fp4_decode for fp16 activations: the float-code decode kernel (float_decode.cuh) of the fp4-fp16
// extension, NVFP4 (group 16) only (MXFP4's E8M0 scales need bf16).
#include "float_decode.cuh"

namespace qlinear_cutlass {

char const* fp4_decode(W4A16DecodeArgs const& a, cudaStream_t stream) {
  if (a.gemm.act != kActF16) return "this extension holds the kernels of the other 16-bit activation dtype";
  if (a.gemm.group == 16) return w4a16_decode_impl::run_float<__half, 4, 16>(a, stream);
  return "group: expected 16 with float16 activations";
}

}  // namespace qlinear_cutlass
