// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// E2M1 x fp16, NVFP4 (a scale per 16 k), 128x128 tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_FLOAT_INSTANTIATE(cutlass::half_t, 4, 16, kW4M128)
}  // namespace qlinear_cutlass
