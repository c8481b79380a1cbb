// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// int8 x bf16, group scales (GPTQ uint8b128), 256x64 (M <= 64, wide N) tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_W8A16_INSTANTIATE(cutlass::bfloat16_t, kW4M64Wide)
}  // namespace qlinear_cutlass
