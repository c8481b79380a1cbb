// NVFP4 activation quantization for the SM100 GEMM (plain CUDA, sm_100a: the hardware E2M1 and E4M3
// conversions). One thread per 16-element block; the numerics of qlinear.formats.micro.quantize_nvfp4
// with a given global scale gs:
//   s = e4m3(amax / 6 * gs)            (round to nearest even, saturating; fp32 in that operation order)
//   code = e2m1(clamp(x * (gs / s), -6, 6))   (true division; round to nearest even; 0 when s == 0)
// The scale is written at its place in the 128x4 tiled layout (qlinear.formats.swizzle); the rows that
// pad M up to 128 get zero scales (their outputs are never stored, but zero keeps them finite).
// UNVERIFIED: this project has no SM100 GPU; the source is compile-checked for sm_100a only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "nvfp4_api.h"

namespace qlinear_cutlass {
namespace {

__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

// Two fp32 -> one byte of E2M1 codes: lo in bits 0-3, hi in bits 4-7 (cvt puts its first source high).
__device__ __forceinline__ uint32_t e2m1x2(float lo, float hi) {
  uint16_t r;
  asm("{\n .reg .b8 t;\n cvt.rn.satfinite.e2m1x2.f32 t, %1, %2;\n cvt.u16.u8 %0, t;\n}" : "=h"(r) : "f"(hi), "f"(lo));
  return r & 0xFF;
}

// Offset of scale (r, c) in the 128x4 tiled layout of a [*, cols] matrix (cols a multiple of 4).
__device__ __forceinline__ int64_t sf_offset(int64_t r, int c, int cols) {
  return (r / 128) * (cols / 4) * 512 + (c / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + (c % 4);
}

template <class T>
__global__ void quant_nvfp4_kernel(T const* __restrict__ x, int m, int k, int64_t ldx, float const* __restrict__ gs_ptr,
                                   uint8_t* __restrict__ q, uint8_t* __restrict__ sf, int64_t rows_padded) {
  const int kb = k / 16;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows_padded * kb) return;
  const int64_t r = idx / kb;
  const int c = int(idx % kb);
  if (r >= m) {  // padding rows: zero scales, no codes
    sf[sf_offset(r, c, kb)] = 0;
    return;
  }
  const T* src = x + r * ldx + int64_t(c) * 16;
  float v[16];
  const uint4* s4 = reinterpret_cast<const uint4*>(src);  // 2 x 16 bytes (rows are 16-byte aligned)
  uint4 raw[2] = {s4[0], s4[1]};
  const T* e = reinterpret_cast<const T*>(raw);
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    v[i] = to_f(e[i]);
    amax = fmaxf(amax, fabsf(v[i]));
  }
  const float gs = *gs_ptr;
  const __nv_fp8_e4m3 s8(amax / 6.0f * gs);  // cvt.rn.satfinite
  const float s = float(s8);
  const float inv = s > 0.f ? __fdiv_rn(gs, s) : 0.f;
  uint32_t w0 = 0, w1 = 0;
#pragma unroll
  for (int i = 0; i < 8; i += 2) {
    w0 |= e2m1x2(fminf(fmaxf(v[i] * inv, -6.f), 6.f), fminf(fmaxf(v[i + 1] * inv, -6.f), 6.f)) << (4 * i);
    w1 |= e2m1x2(fminf(fmaxf(v[i + 8] * inv, -6.f), 6.f), fminf(fmaxf(v[i + 9] * inv, -6.f), 6.f)) << (4 * i);
  }
  *reinterpret_cast<uint2*>(q + r * (k / 2) + int64_t(c) * 8) = make_uint2(w0, w1);
  sf[sf_offset(r, c, kb)] = s8.__x;
}

}  // namespace

char const* quant_nvfp4(void const* x, bool x_bf16, int m, int k, int64_t ldx, float const* gs, void* q, void* sf,
                        cudaStream_t stream) {
  if (k % 64) return "K must be a multiple of 64";
  const int64_t rows = (int64_t(m) + 127) / 128 * 128;
  const int64_t n = rows * (k / 16);
  if (n == 0) return nullptr;
  const int threads = 256;
  const unsigned blocks = unsigned((n + threads - 1) / threads);
  if (x_bf16)
    quant_nvfp4_kernel<<<blocks, threads, 0, stream>>>(static_cast<__nv_bfloat16 const*>(x), m, k, ldx, gs,
                                                         static_cast<uint8_t*>(q), static_cast<uint8_t*>(sf), rows);
  else
    quant_nvfp4_kernel<<<blocks, threads, 0, stream>>>(static_cast<__half const*>(x), m, k, ldx, gs, static_cast<uint8_t*>(q),
                                                         static_cast<uint8_t*>(sf), rows);
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace qlinear_cutlass
