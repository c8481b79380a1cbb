// The plain-C++ interface between the torch binding and the CUTLASS translation units: raw pointers
// and sizes only, so the slow CUTLASS TUs never parse torch headers and the binding never parses CUTLASS.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace qlinear_cutlass {

enum TileConfig : int { kConfigSmall = 0, kConfigMid = 1, kConfigLarge = 2 };
enum OutType : int { kOutBF16 = 0, kOutF16 = 1 };

struct ScaledMMArgs {
  int m, n, k;
  int64_t lda, ldd;          // row strides of A [M, K] and D [M, N] (elements)
  void const* a;             // [M, K] fp8 e4m3 / int8
  void const* b;             // [N, K] fp8 e4m3 / int8, K contiguous
  void* d;                   // [M, N] bf16 / fp16
  float const* a_scale;      // [M] if a_per_row else [1]
  float const* b_scale;      // [N] if b_per_col else [1]
  void const* bias;          // [N] in the output dtype, or null
  int32_t const* azp;        // INT8 only: [M] if azp_per_row else [1], or null (symmetric)
  int32_t const* azp_adj;    // INT8 only: [N] column sums of the weight, or null
  bool a_per_row, b_per_col, azp_per_row;
  int config;                // TileConfig
  int out_type;              // OutType
  int device, sm_count;
  void* workspace;
  size_t workspace_bytes;
};

// Each returns nullptr on success, else a static error message.
char const* scaled_mm_fp8(ScaledMMArgs const& p, cudaStream_t stream);
char const* scaled_mm_int8(ScaledMMArgs const& p, cudaStream_t stream);
size_t scaled_mm_fp8_workspace(ScaledMMArgs const& p);
size_t scaled_mm_int8_workspace(ScaledMMArgs const& p);
// Block-scaled FP8: a_scale is the M-major [K/128, M] group scale, b_scale the [N/128, K/128] block
// scale; m must be a multiple of 4; config kConfigSmall or kConfigLarge.
char const* block_fp8_mm(ScaledMMArgs const& p, cudaStream_t stream);
size_t block_fp8_mm_workspace(ScaledMMArgs const& p);

}  // namespace qlinear_cutlass
