// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// int4 x bf16, group scales and zero terms (AWQ uint4), 256x16 (M <= 16, wide N) tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_W4A16_INSTANTIATE(cutlass::bfloat16_t, true, kW4M16Wide)
}  // namespace qlinear_cutlass
