// One CUTLASS mixed-input GEMM instantiation per file (ninja builds them in parallel):
// int4 x bf16, group scales only (GPTQ uint4b8), 128x256 (larger M) tiles.
#include "w4a16.cuh"

namespace qlinear_cutlass {
QLC_W4A16_INSTANTIATE(cutlass::bfloat16_t, false, kW4M256)
}  // namespace qlinear_cutlass
