// The cutlass provider's act-order gathers (csrc/act_order_gather.cuh launch_gather: a thread per element,
// or a block per row staged in shared memory) compiled on their own with a C entry point, so
// `tools.cutlass_w4a16_gather_bench --lib` checks and times them without building the extension.
#include "act_order_gather.cuh"

extern "C" char const* qlc_gather(void* out, void const* x, void const* perm, int m, int k, int64_t lda, int pdl, int staged,
                                  cudaStream_t stream) {
  const qlinear_cutlass::W4A16GatherArgs a{out, x, static_cast<uint16_t const*>(perm), m, k, lda, pdl, staged};
  return qlinear_cutlass::w4a16_decode_impl::launch_gather(a, stream);
}
