// w4a8_mm: pick the instantiation for (output dtype, tile config). The instantiations live in the
// w4a8_<bf16|fp16>_<small|mid|large>.cu files; this TU includes CUTLASS's numeric types only.
#include "cutlass/numeric_types.h"

#include "w4a8_api.h"

namespace qlinear_cutlass {
namespace {

template <class Out>
char const* run_tile(W4A8Args const& p, cudaStream_t stream) {
  switch (p.config) {
    case kW4A8Small: return w4a8_run<Out, kW4A8Small>(p, stream);
    case kW4A8Mid: return w4a8_run<Out, kW4A8Mid>(p, stream);
    case kW4A8Large: return w4a8_run<Out, kW4A8Large>(p, stream);
    default: return "unknown W4A8 tile config";
  }
}

template <class Out>
size_t workspace_tile(W4A8Args const& p) {
  switch (p.config) {
    case kW4A8Small: return w4a8_workspace<Out, kW4A8Small>(p);
    case kW4A8Mid: return w4a8_workspace<Out, kW4A8Mid>(p);
    case kW4A8Large: return w4a8_workspace<Out, kW4A8Large>(p);
    default: return 0;
  }
}

}  // namespace

char const* w4a8_mm(W4A8Args const& p, cudaStream_t stream) {
  return p.out_type == kW4A8OutBF16 ? run_tile<cutlass::bfloat16_t>(p, stream) : run_tile<cutlass::half_t>(p, stream);
}

size_t w4a8_mm_workspace(W4A8Args const& p) {
  return p.out_type == kW4A8OutBF16 ? workspace_tile<cutlass::bfloat16_t>(p) : workspace_tile<cutlass::half_t>(p);
}

}  // namespace qlinear_cutlass
