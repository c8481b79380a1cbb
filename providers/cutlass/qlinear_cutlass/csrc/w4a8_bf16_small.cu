// One CUTLASS int4 x FP8 GEMM instantiation per file (ninja builds them in parallel):
// bf16 output, 128x64x128 tiles.
#include "w4a8.cuh"

namespace qlinear_cutlass {
QLC_W4A8_INSTANTIATE(cutlass::bfloat16_t, kW4A8Small)
}  // namespace qlinear_cutlass
