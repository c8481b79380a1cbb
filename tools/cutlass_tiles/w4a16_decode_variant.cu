// The provider's W4A16 decode kernel (csrc/w4a16_decode.cuh) compiled on its own into a small shared library with
// the C entry points of w4a16_tile.cu (qlc_w4a16_run / qlc_w4a16_workspace), so `tools.cutlass_w4a16_decode_sweep
// --lib DIR` can check and time variants of it without building (or matching the torch of) the provider's
// extension. -D flags: QLC_WARPS (0: the launcher's rule, or 4 / 8), QLC_FP16 (0 / 1), QLC_BITS (4: W4A16,
// 8: W8A16), QLC_ROWS (0: the rule, 1 / 2 eight-row blocks of x a block), QLC_NO_CLUSTER (1: K slices always
// added through the workspace, never in clusters). A variant of the kernel is a copy of the header with the
// change, put first on the include path (-I) of its build.
#include "w4a16_decode.cuh"

namespace {
constexpr size_t kCounterBytes = 4096 * sizeof(int);  // the workspace starts with the tile counters (zeroed by the caller once)
using Act = std::conditional_t<QLC_FP16, __half, __nv_bfloat16>;
}  // namespace

extern "C" size_t qlc_w4a16_workspace(qlinear_cutlass::W4A16Args const* p) {
  return kCounterBytes + sizeof(float) * 64 * size_t(p->m) * p->n;  // 64 split-K planes at most
}

extern "C" char const* qlc_w4a16_run(qlinear_cutlass::W4A16Args const* p, cudaStream_t stream) {
  qlinear_cutlass::W4A16DecodeArgs a{};
  a.gemm = *p;
  a.counters = static_cast<int*>(p->workspace);
  a.counters_len = 4096;
  a.ws = reinterpret_cast<float*>(static_cast<char*>(p->workspace) + kCounterBytes);
  a.ws_floats = int64_t((p->workspace_bytes - kCounterBytes) / sizeof(float));
  a.warps = QLC_WARPS;
  a.pdl = 1;
  a.rows = QLC_ROWS;
  a.no_cluster = QLC_NO_CLUSTER;
  return qlinear_cutlass::w4a16_decode_impl::run<Act, QLC_BITS>(a, stream);
}
