// One block-scaled FP8 GEMM instantiation: e4m3 x e4m3 (1x128 / 128x128 scales) -> bf16, small tile.
#include "block_fp8.cuh"

namespace qlinear_cutlass {
QLC_INSTANTIATE_BLOCK(cutlass::bfloat16_t, kConfigSmall)
}  // namespace qlinear_cutlass
