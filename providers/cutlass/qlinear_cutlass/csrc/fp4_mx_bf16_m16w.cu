// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// E2M1 x bf16, MXFP4 (a scale per 32 k), 256x16 tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_FLOAT_INSTANTIATE(cutlass::bfloat16_t, 4, 32, kW4M16Wide)
}  // namespace qlinear_cutlass
