// Activation quantization kernels (see act_quant.h). One block per row for the per-row modes: pass 1
// reduces amax (or min and max) over the row with 16-byte loads, pass 2 re-reads the row (from L1/L2)
// and writes 8 codes per thread per step. Bandwidth bound at large M; at M = 1 a single block.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cfloat>

#include "act_quant.h"

namespace qlinear_cutlass {
namespace {

constexpr float kFp8Max = 448.f;
constexpr float kMinFp8Scale = 1.f / (448.f * 512.f);  // an all-zero row keeps a finite scale
constexpr float kMinInt8Scale = 1e-10f;
constexpr int kThreads = 256;


template <bool BF16>
__device__ __forceinline__ void load8(void const* base, int64_t idx, float (&v)[8]) {
  uint4 r = *reinterpret_cast<uint4 const*>(static_cast<char const*>(base) + idx * 2);
  uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (BF16) {
      __nv_bfloat162 h = *reinterpret_cast<__nv_bfloat162*>(&w[i]);
      float2 f = __bfloat1622float2(h);
      v[2 * i] = f.x, v[2 * i + 1] = f.y;
    } else {
      __half2 h = *reinterpret_cast<__half2*>(&w[i]);
      float2 f = __half22float2(h);
      v[2 * i] = f.x, v[2 * i + 1] = f.y;
    }
  }
}

__device__ __forceinline__ float block_max(float v, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // red may still be read by a previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < blockDim.x / 32 ? red[lane] : -FLT_MAX;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The per-element code, shared by every mode: FP8 saturates then casts (round-half-even);
// INT8 rounds half-even, adds the zero point and clamps.
__device__ __forceinline__ uint8_t code_fp8(float v, float s) {
  float t = fminf(fmaxf(v / s, -kFp8Max), kFp8Max);
  return __nv_cvt_float_to_fp8(t, __NV_SATFINITE, __NV_E4M3);
}
__device__ __forceinline__ uint8_t code_int8(float v, float s, float zp) {
  float t = fminf(fmaxf(rintf(v / s) + zp, -128.f), 127.f);
  return static_cast<uint8_t>(static_cast<int8_t>(t));
}

template <bool BF16, int KIND>
__device__ __forceinline__ void write_row(void const* xrow, uint8_t* qrow, int k, float s, float zp) {
  for (int c = threadIdx.x * 8; c < k; c += blockDim.x * 8) {
    float v[8];
    load8<BF16>(xrow, c, v);
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      uint32_t b = KIND == kQuantFp8 ? code_fp8(v[i], s) : code_int8(v[i], s, zp);
      if (i < 4) lo |= b << (8 * i); else hi |= b << (8 * (i - 4));
    }
    *reinterpret_cast<uint2*>(qrow + c) = make_uint2(lo, hi);
  }
}

template <bool BF16, int KIND>
__global__ void __launch_bounds__(kThreads) per_token_kernel(void const* __restrict__ x, int k, int64_t ldx,
                                                             uint8_t* __restrict__ q, float* __restrict__ scale,
                                                             int32_t* __restrict__ zp, float const* __restrict__ ub) {
  __shared__ float red[kThreads / 32];
  int64_t row = blockIdx.x;
  void const* xrow = static_cast<char const*>(x) + row * ldx * 2;
  float hi = 0.f, neg_lo = 0.f;  // the row's max and -min, both clamped at 0 (as the reference)
  for (int c = threadIdx.x * 8; c < k; c += blockDim.x * 8) {
    float v[8];
    load8<BF16>(xrow, c, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      if constexpr (KIND == kQuantInt8Asym) hi = fmaxf(hi, v[i]), neg_lo = fmaxf(neg_lo, -v[i]);
      else hi = fmaxf(hi, fabsf(v[i]));
    }
  }
  hi = block_max(hi, red);
  float s, z = 0.f;
  if constexpr (KIND == kQuantFp8) {
    float amax = ub ? fminf(hi, *ub) : hi;
    s = fmaxf(amax / kFp8Max, kMinFp8Scale);
  } else if constexpr (KIND == kQuantInt8Sym) {
    s = fmaxf(hi / 127.f, kMinInt8Scale);
  } else {
    float lo = -block_max(neg_lo, red);
    s = fmaxf((hi - lo) / 255.f, kMinInt8Scale);
    z = fminf(fmaxf(rintf(-128.f - lo / s), -128.f), 127.f);
  }
  if (threadIdx.x == 0) {
    scale[row] = s;
    if constexpr (KIND == kQuantInt8Asym) zp[row] = static_cast<int32_t>(z);
  }
  write_row<BF16, KIND>(xrow, q + row * k, k, s, z);
}

template <bool BF16, int KIND>
__global__ void __launch_bounds__(kThreads) static_kernel(void const* __restrict__ x, int k, int64_t ldx,
                                                          uint8_t* __restrict__ q, float const* __restrict__ scale,
                                                          int32_t const* __restrict__ zp) {
  int64_t row = blockIdx.x;
  float z = zp ? static_cast<float>(*zp) : 0.f;
  write_row<BF16, KIND>(static_cast<char const*>(x) + row * ldx * 2, q + row * k, k, *scale, z);
}

template <bool BF16>
__global__ void __launch_bounds__(kThreads) amax_kernel(void const* __restrict__ x, int k, int64_t ldx, float* amax) {
  __shared__ float red[kThreads / 32];
  void const* xrow = static_cast<char const*>(x) + int64_t(blockIdx.x) * ldx * 2;
  float hi = 0.f;
  for (int c = threadIdx.x * 8; c < k; c += blockDim.x * 8) {
    float v[8];
    load8<BF16>(xrow, c, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) hi = fmaxf(hi, fabsf(v[i]));
  }
  hi = block_max(hi, red);
  // amax >= 0, so its float bits order like ints (a NaN row propagates as the largest pattern)
  if (threadIdx.x == 0) atomicMax(reinterpret_cast<int*>(amax), __float_as_int(hi));
}

template <bool BF16>
__global__ void __launch_bounds__(kThreads) tensor_fp8_kernel(void const* __restrict__ x, int k, int64_t ldx,
                                                              uint8_t* __restrict__ q, float* __restrict__ scale,
                                                              float const* __restrict__ amax) {
  float s = fmaxf(*amax / kFp8Max, kMinFp8Scale);
  if (blockIdx.x == 0 && threadIdx.x == 0) *scale = s;
  write_row<BF16, kQuantFp8>(static_cast<char const*>(x) + int64_t(blockIdx.x) * ldx * 2, q + int64_t(blockIdx.x) * k, k, s, 0.f);
}

// One warp per 128-wide group (4 values per lane), 8 warps per row.
template <bool BF16>
__global__ void __launch_bounds__(kThreads) group_fp8_kernel(void const* __restrict__ x, int k, int64_t ldx,
                                                             uint8_t* __restrict__ q, float* __restrict__ scale_t,
                                                             int64_t ld_s) {
  int64_t row = blockIdx.x;
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  char const* xrow = static_cast<char const*>(x) + row * ldx * 2;
  for (int g = warp; g < k / 128; g += kThreads / 32) {
    int c = g * 128 + lane * 4;
    uint2 r = *reinterpret_cast<uint2 const*>(xrow + int64_t(c) * 2);
    float v[4];
    if constexpr (BF16) {
      float2 a = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&r.x));
      float2 b = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&r.y));
      v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
    } else {
      float2 a = __half22float2(*reinterpret_cast<__half2*>(&r.x));
      float2 b = __half22float2(*reinterpret_cast<__half2*>(&r.y));
      v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
    }
    float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float s = fmaxf(amax / kFp8Max, kMinFp8Scale);
    uint32_t w = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) w |= uint32_t(code_fp8(v[i], s)) << (8 * i);
    *reinterpret_cast<uint32_t*>(q + row * k + c) = w;
    if (lane == 0) scale_t[int64_t(g) * ld_s + row] = s;
  }
}

char const* check(int m, int k, int64_t ldx, void const* x) {
  if (k % 8) return "K must be a multiple of 8";
  if (ldx % 8 || reinterpret_cast<uintptr_t>(x) % 16) return "x rows must be 16-byte aligned";
  return nullptr;
}

char const* launched() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace

char const* quant_per_token(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float* scale,
                            int32_t* zp, float const* ub, int kind, cudaStream_t stream) {
  if (auto e = check(m, k, ldx, x)) return e;
  if (m == 0) return nullptr;
  auto* qb = static_cast<uint8_t*>(q);
#define QLC_LAUNCH(BF, KD) per_token_kernel<BF, KD><<<m, kThreads, 0, stream>>>(x, k, ldx, qb, scale, zp, ub)
  switch (kind) {
    case kQuantFp8: x_bf16 ? QLC_LAUNCH(true, kQuantFp8) : QLC_LAUNCH(false, kQuantFp8); break;
    case kQuantInt8Sym: x_bf16 ? QLC_LAUNCH(true, kQuantInt8Sym) : QLC_LAUNCH(false, kQuantInt8Sym); break;
    case kQuantInt8Asym: x_bf16 ? QLC_LAUNCH(true, kQuantInt8Asym) : QLC_LAUNCH(false, kQuantInt8Asym); break;
    default: return "unknown quantization kind";
  }
#undef QLC_LAUNCH
  return launched();
}

char const* quant_static(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float const* scale,
                         int32_t const* zp, int kind, cudaStream_t stream) {
  if (auto e = check(m, k, ldx, x)) return e;
  if (m == 0) return nullptr;
  auto* qb = static_cast<uint8_t*>(q);
#define QLC_LAUNCH(BF, KD) static_kernel<BF, KD><<<m, kThreads, 0, stream>>>(x, k, ldx, qb, scale, zp)
  if (kind == kQuantFp8) {
    x_bf16 ? QLC_LAUNCH(true, kQuantFp8) : QLC_LAUNCH(false, kQuantFp8);
  } else {
    x_bf16 ? QLC_LAUNCH(true, kQuantInt8Sym) : QLC_LAUNCH(false, kQuantInt8Sym);
  }
#undef QLC_LAUNCH
  return launched();
}

char const* quant_per_tensor_fp8(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float* scale,
                                 float* amax_ws, cudaStream_t stream) {
  if (auto e = check(m, k, ldx, x)) return e;
  if (m == 0) return nullptr;
  cudaMemsetAsync(amax_ws, 0, sizeof(float), stream);
  auto* qb = static_cast<uint8_t*>(q);
  if (x_bf16) {
    amax_kernel<true><<<m, kThreads, 0, stream>>>(x, k, ldx, amax_ws);
    tensor_fp8_kernel<true><<<m, kThreads, 0, stream>>>(x, k, ldx, qb, scale, amax_ws);
  } else {
    amax_kernel<false><<<m, kThreads, 0, stream>>>(x, k, ldx, amax_ws);
    tensor_fp8_kernel<false><<<m, kThreads, 0, stream>>>(x, k, ldx, qb, scale, amax_ws);
  }
  return launched();
}

char const* quant_per_group_fp8(void const* x, bool x_bf16, int m, int k, int64_t ldx, void* q, float* scale_t,
                                int64_t ld_s, cudaStream_t stream) {
  if (auto e = check(m, k, ldx, x)) return e;
  if (k % 128) return "K must be a multiple of 128 for 1 x 128 groups";
  if (m == 0) return nullptr;
  auto* qb = static_cast<uint8_t*>(q);
  if (x_bf16) group_fp8_kernel<true><<<m, kThreads, 0, stream>>>(x, k, ldx, qb, scale_t, ld_s);
  else group_fp8_kernel<false><<<m, kThreads, 0, stream>>>(x, k, ldx, qb, scale_t, ld_s);
  return launched();
}

}  // namespace qlinear_cutlass
