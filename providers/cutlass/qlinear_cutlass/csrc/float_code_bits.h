// Float weight codes (E2M1, E4M3) placed into 16-bit values without arithmetic, two at a time: the sign
// to bit 15, exponent|mantissa to the low end of the 16-bit type's exponent field and the top of its
// mantissa, which reads as value * 2^-bias (bias = the type's exponent bias minus the code's: E2M1 126
// for bf16, 14 for fp16; E4M3 120 / 8; subnormal codes land on the type's subnormals, which both keep).
// The scales the codes are multiplied by carry the 2^bias back (qlinear.formats.codes.code_scales and
// the kernels' fp32 alpha). Shared by the GEMM's operand handling (mixed_input_float.cuh) and the
// decode kernel (float_decode.cuh). Plain CUDA.
#pragma once

#include <cstdint>

namespace qlinear_cutlass {

// Two E2M1 codes at bits [0, 4) and [16, 20) -> two 16-bit values, each value * 2^-bias.
template <bool kBf16>
__device__ __forceinline__ uint32_t e2m1_pair_raw(uint32_t bits) {
  return ((bits & 0x00080008u) << 12) | ((bits & 0x00070007u) << (kBf16 ? 6 : 9));
}
// Two E4M3 codes at bits [0, 8) and [16, 24) -> two 16-bit values, each value * 2^-bias.
template <bool kBf16>
__device__ __forceinline__ uint32_t e4m3_pair_raw(uint32_t bits) {
  return ((bits & 0x00800080u) << 8) | ((bits & 0x007F007Fu) << (kBf16 ? 4 : 7));
}

}  // namespace qlinear_cutlass
