// One block-scaled FP8 GEMM instantiation: e4m3 x e4m3 (1x128 / 128x128 scales) -> fp16, large tile.
#include "block_fp8.cuh"

namespace qlinear_cutlass {
QLC_INSTANTIATE_BLOCK(cutlass::half_t, kConfigLarge)
}  // namespace qlinear_cutlass
