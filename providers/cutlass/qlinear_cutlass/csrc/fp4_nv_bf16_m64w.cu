// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// E2M1 x bf16, NVFP4 (a scale per 16 k), 256x64 tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_FLOAT_INSTANTIATE(cutlass::bfloat16_t, 4, 16, kW4M64Wide)
}  // namespace qlinear_cutlass
