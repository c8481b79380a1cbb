// One CUTLASS GEMM instantiation per file (ninja builds them in parallel): int8 x int8 -> fp16, large tile.
#include "scaled_mm.cuh"

namespace qlinear_cutlass {
QLC_INSTANTIATE(int8_t, cutlass::half_t, kConfigLarge)
}  // namespace qlinear_cutlass
