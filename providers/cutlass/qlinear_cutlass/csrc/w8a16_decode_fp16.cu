// w8a16_decode for fp16 activations: the decode kernel (w4a16_decode.cuh, 8-bit codes) of the w8a16-fp16 extension.
#include "act_order_gather.cuh"

namespace qlinear_cutlass {

char const* w8a16_decode(W4A16DecodeArgs const& a, cudaStream_t stream) {
  if (a.gemm.act != kActF16) return "this extension holds the kernels of the other 16-bit activation dtype";
  return w4a16_decode_impl::run<__half, 8>(a, stream);
}

char const* w4a16_gather(W4A16GatherArgs const& a, cudaStream_t stream) { return w4a16_decode_impl::launch_gather(a, stream); }

}  // namespace qlinear_cutlass
