// scaled_mm_fp8 / scaled_mm_int8: pick the instantiation for (output dtype, tile config). The
// instantiations live in the scaled_mm_<family>_<out>_<tile>.cu and block_fp8_<out>_<tile>.cu files.
#include "scaled_mm_dispatch.h"

namespace qlinear_cutlass {
namespace {

template <class AB, class D>
char const* run_tile(ScaledMMArgs const& p, cudaStream_t stream) {
  switch (p.config) {
    case kConfigSmall: return run_config<AB, D, kConfigSmall>(p, stream);
    case kConfigMid: return run_config<AB, D, kConfigMid>(p, stream);
    case kConfigLarge: return run_config<AB, D, kConfigLarge>(p, stream);
    default: return "unknown tile config";
  }
}

template <class AB, class D>
size_t workspace_tile(ScaledMMArgs const& p) {
  switch (p.config) {
    case kConfigSmall: return workspace_config<AB, D, kConfigSmall>(p);
    case kConfigMid: return workspace_config<AB, D, kConfigMid>(p);
    case kConfigLarge: return workspace_config<AB, D, kConfigLarge>(p);
    default: return 0;
  }
}

template <class AB>
char const* run_out(ScaledMMArgs const& p, cudaStream_t stream) {
  return p.out_type == kOutBF16 ? run_tile<AB, cutlass::bfloat16_t>(p, stream) : run_tile<AB, cutlass::half_t>(p, stream);
}

template <class AB>
size_t workspace_out(ScaledMMArgs const& p) {
  return p.out_type == kOutBF16 ? workspace_tile<AB, cutlass::bfloat16_t>(p) : workspace_tile<AB, cutlass::half_t>(p);
}

template <class D>
char const* run_block(ScaledMMArgs const& p, cudaStream_t stream) {
  return p.config == kConfigSmall ? run_block_config<D, kConfigSmall>(p, stream) : run_block_config<D, kConfigLarge>(p, stream);
}

template <class D>
size_t workspace_block(ScaledMMArgs const& p) {
  return p.config == kConfigSmall ? workspace_block_config<D, kConfigSmall>(p) : workspace_block_config<D, kConfigLarge>(p);
}

}  // namespace

char const* block_fp8_mm(ScaledMMArgs const& p, cudaStream_t stream) {
  return p.out_type == kOutBF16 ? run_block<cutlass::bfloat16_t>(p, stream) : run_block<cutlass::half_t>(p, stream);
}
size_t block_fp8_mm_workspace(ScaledMMArgs const& p) {
  return p.out_type == kOutBF16 ? workspace_block<cutlass::bfloat16_t>(p) : workspace_block<cutlass::half_t>(p);
}

char const* scaled_mm_fp8(ScaledMMArgs const& p, cudaStream_t stream) { return run_out<cutlass::float_e4m3_t>(p, stream); }
char const* scaled_mm_int8(ScaledMMArgs const& p, cudaStream_t stream) { return run_out<int8_t>(p, stream); }
size_t scaled_mm_fp8_workspace(ScaledMMArgs const& p) { return workspace_out<cutlass::float_e4m3_t>(p); }
size_t scaled_mm_int8_workspace(ScaledMMArgs const& p) { return workspace_out<int8_t>(p); }

}  // namespace qlinear_cutlass
