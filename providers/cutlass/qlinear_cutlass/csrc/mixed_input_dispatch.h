// The body of w4a16_mm / w8a16_mm: pick the instantiation for (activation dtype, zero points or not,
// tile config). Included by w4a16_dispatch.cu (QLC_MIXED_BITS 4: the w4a16_<scale|zero>_<act>_<tile>.cu
// instantiations) and w8a16_dispatch.cu (8: w8a16_<act>_<tile>.cu), so neither extension links the
// other's. CUTLASS's numeric types only.
#pragma once

#include "cutlass/numeric_types.h"

#include "w4a16_api.h"

namespace qlinear_cutlass {
namespace {

#define QLC_CASE_RUN(C) case C: return run_one<Act, kZero, C>(p, stream);
#define QLC_CASE_WS(C) case C: return workspace_one<Act, kZero, C>(p);

#if QLC_MIXED_BITS == 8
template <class Act, bool kZero, int Config>
char const* run_one(W4A16Args const& p, cudaStream_t stream) { return w8a16_run<Act, Config>(p, stream); }
template <class Act, bool kZero, int Config>
size_t workspace_one(W4A16Args const& p) { return w8a16_workspace<Act, Config>(p); }
#else
template <class Act, bool kZero, int Config>
char const* run_one(W4A16Args const& p, cudaStream_t stream) { return w4a16_run<Act, kZero, Config>(p, stream); }
template <class Act, bool kZero, int Config>
size_t workspace_one(W4A16Args const& p) { return w4a16_workspace<Act, kZero, Config>(p); }
#endif

template <class Act, bool kZero>
char const* run_tile(W4A16Args const& p, cudaStream_t stream) {
  switch (p.config) {
    QLC_W4A16_CONFIGS(QLC_CASE_RUN)
    default: return "unknown W4A16 tile config";
  }
}

template <class Act, bool kZero>
size_t workspace_tile(W4A16Args const& p) {
  switch (p.config) {
    QLC_W4A16_CONFIGS(QLC_CASE_WS)
    default: return 0;
  }
}

template <class Act>
char const* run_zero(W4A16Args const& p, cudaStream_t stream) {
#if QLC_MIXED_BITS == 8
  return p.zero ? "the W8A16 GEMM takes no zero points" : run_tile<Act, false>(p, stream);
#else
  return p.zero ? run_tile<Act, true>(p, stream) : run_tile<Act, false>(p, stream);
#endif
}

template <class Act>
size_t workspace_zero(W4A16Args const& p) {
#if QLC_MIXED_BITS == 8
  return workspace_tile<Act, false>(p);
#else
  return p.zero ? workspace_tile<Act, true>(p) : workspace_tile<Act, false>(p);
#endif
}

}  // namespace

#if QLC_MIXED_BITS == 8
char const* w8a16_mm(W4A16Args const& p, cudaStream_t stream) {
  return p.act == kActBF16 ? run_zero<cutlass::bfloat16_t>(p, stream) : run_zero<cutlass::half_t>(p, stream);
}
size_t w8a16_mm_workspace(W4A16Args const& p) {
  return p.act == kActBF16 ? workspace_zero<cutlass::bfloat16_t>(p) : workspace_zero<cutlass::half_t>(p);
}
#else
char const* w4a16_mm(W4A16Args const& p, cudaStream_t stream) {
  return p.act == kActBF16 ? run_zero<cutlass::bfloat16_t>(p, stream) : run_zero<cutlass::half_t>(p, stream);
}
size_t w4a16_mm_workspace(W4A16Args const& p) {
  return p.act == kActBF16 ? workspace_zero<cutlass::bfloat16_t>(p) : workspace_zero<cutlass::half_t>(p);
}
#endif

}  // namespace qlinear_cutlass
