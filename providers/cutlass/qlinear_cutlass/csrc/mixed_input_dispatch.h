// The body of w4a16_mm / w8a16_mm: pick the instantiation for (zero points or not, tile config). One
// extension per (code width, activation dtype), so a model builds only the GEMMs it runs: included by
// w4a16_dispatch_<act>.cu (QLC_MIXED_BITS 4: the w4a16_<scale|zero>_<act>_<tile>.cu instantiations)
// and w8a16_dispatch_<act>.cu (8: w8a16_<act>_<tile>.cu), fp4_dispatch_<act>.cu and mxfp8_dispatch_bf16.cu
// (0: float codes of QLC_FLOAT_BITS 4 / 8, fp4_<nv|mx>_<act>_<tile>.cu and mxfp8_bf16_<tile>.cu;
// QLC_FLOAT_MX 1 where MXFP4 is built), each with QLC_MIXED_ACT (the CUTLASS type) and QLC_MIXED_ACT_ID
// (its W4A16Act id). CUTLASS's numeric types only.
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
#elif QLC_MIXED_BITS == 0  // float codes of QLC_FLOAT_BITS: kZero stands for the group (false 16, true 32)
// which (code width, group) pairs this extension built: E2M1 16 (NVFP4) and, with QLC_FLOAT_MX, 32
// (MXFP4); E4M3 32 only (MXFP8)
constexpr bool kHas16 = QLC_FLOAT_BITS == 4;
constexpr bool kHas32 = QLC_FLOAT_BITS == 8 || QLC_FLOAT_MX;
template <class Act, bool kZero, int Config>
char const* run_one(W4A16Args const& p, cudaStream_t stream) {
  if constexpr (kZero ? kHas32 : kHas16) return float_run<Act, QLC_FLOAT_BITS, kZero ? 32 : 16, Config>(p, stream);
  return "this extension holds no GEMM for this group and activation dtype";
}
template <class Act, bool kZero, int Config>
size_t workspace_one(W4A16Args const& p) {
  if constexpr (kZero ? kHas32 : kHas16) return float_workspace<Act, QLC_FLOAT_BITS, kZero ? 32 : 16, Config>(p);
  return 0;
}
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
#elif QLC_MIXED_BITS == 0
  if (p.zero) return "the float-code GEMMs take no zero points";
  if (p.group != 16 && p.group != 32) return "the float-code GEMMs take groups of 16 or 32";
  return p.group == 32 ? run_tile<Act, true>(p, stream) : run_tile<Act, false>(p, stream);
#else
  return p.zero ? run_tile<Act, true>(p, stream) : run_tile<Act, false>(p, stream);
#endif
}

template <class Act>
size_t workspace_zero(W4A16Args const& p) {
#if QLC_MIXED_BITS == 8
  return workspace_tile<Act, false>(p);
#elif QLC_MIXED_BITS == 0
  return p.group == 32 ? workspace_tile<Act, true>(p) : workspace_tile<Act, false>(p);
#else
  return p.zero ? workspace_tile<Act, true>(p) : workspace_tile<Act, false>(p);
#endif
}

}  // namespace

#if QLC_MIXED_BITS == 8
#define QLC_MIXED_MM w8a16_mm
#define QLC_MIXED_MM_WORKSPACE w8a16_mm_workspace
#elif QLC_MIXED_BITS == 0 && QLC_FLOAT_BITS == 4
#define QLC_MIXED_MM fp4_mm
#define QLC_MIXED_MM_WORKSPACE fp4_mm_workspace
#elif QLC_MIXED_BITS == 0
#define QLC_MIXED_MM mxfp8_mm
#define QLC_MIXED_MM_WORKSPACE mxfp8_mm_workspace
#else
#define QLC_MIXED_MM w4a16_mm
#define QLC_MIXED_MM_WORKSPACE w4a16_mm_workspace
#endif

char const* QLC_MIXED_MM(W4A16Args const& p, cudaStream_t stream) {
  if (p.act != QLC_MIXED_ACT_ID) return "this extension holds the GEMMs of the other 16-bit activation dtype";
  return run_zero<QLC_MIXED_ACT>(p, stream);
}
size_t QLC_MIXED_MM_WORKSPACE(W4A16Args const& p) {
  return p.act == QLC_MIXED_ACT_ID ? workspace_zero<QLC_MIXED_ACT>(p) : 0;
}

}  // namespace qlinear_cutlass
