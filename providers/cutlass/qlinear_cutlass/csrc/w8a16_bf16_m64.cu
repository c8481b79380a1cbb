// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// int8 x bf16, group scales (GPTQ uint8b128), 128x64 (M <= 64) tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_W8A16_INSTANTIATE(cutlass::bfloat16_t, kW4M64)
}  // namespace qlinear_cutlass
