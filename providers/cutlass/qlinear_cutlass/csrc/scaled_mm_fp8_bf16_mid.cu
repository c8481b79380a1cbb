// One CUTLASS GEMM instantiation per file (ninja builds them in parallel): fp8 x fp8 -> bf16, mid tile.
#include "scaled_mm.cuh"

namespace qlinear_cutlass {
QLC_INSTANTIATE(cutlass::float_e4m3_t, cutlass::bfloat16_t, kConfigMid)
}  // namespace qlinear_cutlass
