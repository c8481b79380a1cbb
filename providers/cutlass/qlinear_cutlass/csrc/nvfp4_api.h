// The plain-C++ interface between the NVFP4 (SM100) torch binding and its CUDA translation units: raw
// pointers and sizes only (the CUTLASS TUs never parse torch headers).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace qlinear_cutlass {

struct NvFp4Args {
  int m, n, k;             // K a multiple of 64 (16-element scale blocks, four per 128x4 scale tile)
  void const* xq;          // [M, K/2] E2M1 activation codes (element 2i in the low nibble)
  void const* x_sf;        // E4M3 activation block scales in the 128x4 layout: [round_up(M, 128), K/16]
  void const* w;           // [N, K/2] E2M1 weight codes
  void const* w_sf;        // E4M3 weight block scales in the 128x4 layout: [round_up(N, 128), K/16]
  float const* alpha;      // [1]: 1 / (input_global_scale * weight_global_scale)
  void const* bias;        // [N] in the output dtype, or null
  void* out;               // [M, N] bf16 / fp16, row stride ldd
  int64_t ldd;
  int device, sm_count;
  void* workspace;
  size_t workspace_bytes;
};

// Returns nullptr on success, else a static error message. One per output dtype (nvfp4_sm100_<out>.cu).
char const* nvfp4_mm_bf16(NvFp4Args const& p, cudaStream_t stream);
char const* nvfp4_mm_fp16(NvFp4Args const& p, cudaStream_t stream);
size_t nvfp4_mm_bf16_workspace(NvFp4Args const& p);
size_t nvfp4_mm_fp16_workspace(NvFp4Args const& p);

// x [M, K] 16-bit (x_bf16 picks bf16 vs fp16, row stride ldx) -> E2M1 codes q [M, K/2] and E4M3 block
// scales written into sf in the 128x4 layout (rows padded to 128 hold zero scales). The numerics of
// qlinear.formats.micro.quantize_nvfp4 with the layer's global scale gs[0]. Needs K % 64 == 0.
char const* quant_nvfp4(void const* x, bool x_bf16, int m, int k, int64_t ldx, float const* gs, void* q, void* sf,
                        cudaStream_t stream);

}  // namespace qlinear_cutlass
