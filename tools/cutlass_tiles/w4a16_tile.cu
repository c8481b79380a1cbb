// One W4A16 (or W8A16) tile configuration of the provider's mixed-input GEMM (csrc/w4a16.cuh), compiled on its own
// into a small shared library with a C entry point, so tools/cutlass_w4a16_tiles.py can time many tile
// shapes without building (or matching the torch of) the provider's extension. The configuration comes
// from -D flags: QLC_TILE_N (weight rows), QLC_TILE_M (token rows), QLC_TILE_K, QLC_CLUSTER_N,
// QLC_PINGPONG (0 / 1), QLC_STREAMK (0 / 1), QLC_ZERO (0 / 1), QLC_FP16 (0 / 1), QLC_BITS (4 / 8),
// QLC_FP4 (0, or 16 / 32: E2M1 codes with a scale per that many k, mixed_input_float.cuh),
// QLC_GDC (0 / 1: built with CUTLASS_ENABLE_GDC_FOR_SM90, so the kernel waits on griddepcontrol before its
// first global load, and launched as a programmatic dependent of the kernel before it: its prologue
// overlaps that kernel's tail; not in the provider).
#ifndef QLC_GDC
#define QLC_GDC 0
#endif
#ifndef QLC_FP4
#define QLC_FP4 0
#endif
#include "w4a16.cuh"

namespace {
using namespace cute;
using namespace qlinear_cutlass;
using Act = std::conditional_t<QLC_FP16, cutlass::half_t, cutlass::bfloat16_t>;
using Tile = Shape<Int<QLC_TILE_N>, Int<QLC_TILE_M>, Int<QLC_TILE_K>>;
using Cluster = Shape<Int<QLC_CLUSTER_N>, _1, _1>;
using KernelSchedule = std::conditional_t<QLC_PINGPONG, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                                          cutlass::gemm::KernelTmaWarpSpecializedCooperative>;
using EpiSchedule = std::conditional_t<QLC_PINGPONG, cutlass::epilogue::TmaWarpSpecialized,
                                       cutlass::epilogue::TmaWarpSpecializedCooperative>;
using Scheduler = std::conditional_t<QLC_STREAMK, cutlass::gemm::StreamKScheduler, cutlass::gemm::PersistentScheduler>;
using Weight = std::conditional_t<QLC_FP4 != 0, Fp4Weight<QLC_FP4 != 0 ? QLC_FP4 : 16>,
                                  std::conditional_t<QLC_BITS == 8, Int8Weight, Int4Weight>>;
using Gemm = MixedInputGemm<Weight, Act, bool(QLC_ZERO), Tile, Cluster, KernelSchedule, EpiSchedule, Scheduler>;
}  // namespace

extern "C" char const* qlc_w4a16_run(W4A16Args const* p, cudaStream_t stream) {
#if QLC_GDC  // launched as a programmatic dependent of the previous kernel
  return run_gemm<typename Gemm::Gemm, true>(Gemm::arguments(*p), p->workspace, p->workspace_bytes, stream);
#else
  return Gemm::run(*p, stream);
#endif
}
extern "C" size_t qlc_w4a16_workspace(W4A16Args const* p) { return Gemm::workspace(*p); }

#if QLC_STREAMK
// The same GEMM with the stream-K scheduler's decomposition forced: mode 0 heuristic (what the
// provider runs), 1 data-parallel, 2 split-K into `splits`, 3 stream-K.
namespace {
typename Gemm::Gemm::Arguments forced(W4A16Args const* p, int mode, int splits) {
  auto args = Gemm::arguments(*p);
  args.scheduler.decomposition_mode = static_cast<decltype(args.scheduler.decomposition_mode)>(mode);
  args.scheduler.splits = splits;
  return args;
}
}  // namespace

extern "C" char const* qlc_w4a16_run_mode(W4A16Args const* p, cudaStream_t stream, int mode, int splits) {
  return run_gemm<typename Gemm::Gemm>(forced(p, mode, splits), p->workspace, p->workspace_bytes, stream);
}
extern "C" size_t qlc_w4a16_workspace_mode(W4A16Args const* p, int mode, int splits) {
  return Gemm::Gemm::get_workspace_size(forced(p, mode, splits));
}
#endif
