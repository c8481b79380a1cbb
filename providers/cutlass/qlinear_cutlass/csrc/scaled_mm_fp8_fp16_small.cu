// One CUTLASS GEMM instantiation per file (ninja builds them in parallel): fp8 x fp8 -> fp16, small tile.
#include "scaled_mm.cuh"

namespace qlinear_cutlass {
QLC_INSTANTIATE(cutlass::float_e4m3_t, cutlass::half_t, kConfigSmall)
}  // namespace qlinear_cutlass
