// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// int4 x fp16, group scales and zero terms (AWQ uint4 + zero points), 128x128 tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_W4A16_INSTANTIATE(cutlass::half_t, true, kW4Mid)
}  // namespace qlinear_cutlass
