// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// E4M3 x bf16, MXFP8 (a scale per 32 k), 128x16 tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_FLOAT_INSTANTIATE(cutlass::bfloat16_t, 8, 32, kW4M16)
}  // namespace qlinear_cutlass
