// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// int4 x bf16, group scales and zero terms (AWQ uint4), 128x128 (M <= 256) tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_W4A16_INSTANTIATE(cutlass::bfloat16_t, true, kW4M128)
}  // namespace qlinear_cutlass
