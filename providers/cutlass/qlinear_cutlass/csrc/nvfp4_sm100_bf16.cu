// The NVFP4 GEMM for SM100 with bf16 output (one instantiation per file: ninja builds them in parallel).
#include "nvfp4_sm100.cuh"

namespace qlinear_cutlass {
char const* nvfp4_mm_bf16(NvFp4Args const& p, cudaStream_t stream) { return NvFp4Gemm<cutlass::bfloat16_t>::run(p, stream); }
size_t nvfp4_mm_bf16_workspace(NvFp4Args const& p) { return NvFp4Gemm<cutlass::bfloat16_t>::workspace(p); }
}  // namespace qlinear_cutlass
