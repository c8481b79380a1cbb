// Activation quantization launchers (plain CUDA, no CUTLASS, no torch): the numerics of the project's
// reference quantizers (scale from amax in fp32, true division, round-half-even / saturating cast).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace qlinear_cutlass {

enum QuantKind : int { kQuantFp8 = 0, kQuantInt8Sym = 1, kQuantInt8Asym = 2 };

// x [M, K] (row stride ldx elements), 16-bit (x_bf16 picks bf16 vs fp16) -> q [M, K] contiguous.
// Dynamic per row: scale[M] (and zero point zp[M] for kQuantInt8Asym); ub (FP8 only, may be null)
// caps each row's amax (vLLM's input_scale_ub). Needs K % 8 == 0 and 16-byte aligned rows.
char const* quant_per_token(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float* scale,
                            int32_t* zp, float const* ub, int kind, cudaStream_t stream);

// Static per-tensor: q = quant(x / scale[0] (+ zp[0])), zp may be null.
char const* quant_static(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float const* scale,
                         int32_t const* zp, int kind, cudaStream_t stream);

// Dynamic per-tensor FP8: amax over x into amax_ws[0] (zeroed here), then scale[0] = amax / 448, q.
char const* quant_per_tensor_fp8(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float* scale,
                                 float* amax_ws, cudaStream_t stream);

// Dynamic 1 x 128 groups (block FP8): q and scale_t[g * ld_s + row] (group-major: the M-major SFA
// layout of the block GEMM). Needs K % 128 == 0.
char const* quant_per_group_fp8(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float* scale_t,
                                int64_t ld_s, cudaStream_t stream);

}  // namespace qlinear_cutlass
