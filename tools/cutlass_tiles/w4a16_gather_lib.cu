// The provider's act-order gather (csrc/w4a16_decode.cuh launch_gather: a thread per element) and the
// candidate of w4a16_gather_rows.cuh compiled on their own with C entry points, so
// `tools.cutlass_w4a16_gather_bench --lib` checks and times them without building the extension.
#include "w4a16_gather_rows.cuh"

namespace {
qlinear_cutlass::W4A16GatherArgs args(void* out, void const* x, int64_t const* perm, int m, int k, int64_t lda, int pdl) {
  return {out, x, perm, m, k, lda, pdl};
}
}  // namespace

extern "C" char const* qlc_gather(void* out, void const* x, int64_t const* perm, int m, int k, int64_t lda, int pdl,
                                  cudaStream_t stream) {
  return qlinear_cutlass::w4a16_decode_impl::launch_gather(args(out, x, perm, m, k, lda, pdl), stream);
}

extern "C" char const* qlc_gather_rows(void* out, void const* x, int64_t const* perm, int m, int k, int64_t lda, int pdl,
                                       cudaStream_t stream) {
  return qlinear_cutlass::w4a16_gather_rows::launch(args(out, x, perm, m, k, lda, pdl), stream);
}
