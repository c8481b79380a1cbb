// One CUTLASS GEMM instantiation per file (ninja builds them in parallel): int8 x int8 -> bf16, mid tile.
#include "scaled_mm.cuh"

namespace qlinear_cutlass {
QLC_INSTANTIATE(int8_t, cutlass::bfloat16_t, kConfigMid)
}  // namespace qlinear_cutlass
