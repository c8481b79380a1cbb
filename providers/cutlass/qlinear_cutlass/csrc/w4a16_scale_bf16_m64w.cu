// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// int4 x bf16, group scales only (GPTQ uint4b8), 256x64 (M <= 64, wide N) tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_W4A16_INSTANTIATE(cutlass::bfloat16_t, false, kW4M64Wide)
}  // namespace qlinear_cutlass
