// One CUTLASS int4 x FP8 GEMM instantiation per file (ninja builds them in parallel):
// fp16 output, 128x128x128 tiles.
#include "w4a8.cuh"

namespace qlinear_cutlass {
QLC_W4A8_INSTANTIATE(cutlass::half_t, kW4A8Mid)
}  // namespace qlinear_cutlass
