// w4a16_mm: pick the instantiation for (activation dtype, zero points or not, tile config). The
// instantiations live in the w4a16_<scale|zero>_<bf16|fp16>_<small|mid|large>.cu files; this TU
// includes CUTLASS's numeric types only.
#include "cutlass/numeric_types.h"

#include "w4a16_api.h"

namespace qlinear_cutlass {
namespace {

template <class Act, bool kZero>
char const* run_tile(W4A16Args const& p, cudaStream_t stream) {
  switch (p.config) {
    case kW4Small: return w4a16_run<Act, kZero, kW4Small>(p, stream);
    case kW4Mid: return w4a16_run<Act, kZero, kW4Mid>(p, stream);
    case kW4Large: return w4a16_run<Act, kZero, kW4Large>(p, stream);
    default: return "unknown W4A16 tile config";
  }
}

template <class Act, bool kZero>
size_t workspace_tile(W4A16Args const& p) {
  switch (p.config) {
    case kW4Small: return w4a16_workspace<Act, kZero, kW4Small>(p);
    case kW4Mid: return w4a16_workspace<Act, kZero, kW4Mid>(p);
    case kW4Large: return w4a16_workspace<Act, kZero, kW4Large>(p);
    default: return 0;
  }
}

template <class Act>
char const* run_zero(W4A16Args const& p, cudaStream_t stream) {
  return p.zero ? run_tile<Act, true>(p, stream) : run_tile<Act, false>(p, stream);
}

template <class Act>
size_t workspace_zero(W4A16Args const& p) {
  return p.zero ? workspace_tile<Act, true>(p) : workspace_tile<Act, false>(p);
}

}  // namespace

char const* w4a16_mm(W4A16Args const& p, cudaStream_t stream) {
  return p.act == kActBF16 ? run_zero<cutlass::bfloat16_t>(p, stream) : run_zero<cutlass::half_t>(p, stream);
}

size_t w4a16_mm_workspace(W4A16Args const& p) {
  return p.act == kActBF16 ? workspace_zero<cutlass::bfloat16_t>(p) : workspace_zero<cutlass::half_t>(p);
}

}  // namespace qlinear_cutlass
