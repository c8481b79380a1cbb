// Act-order activation gather on the device: xp[m][j] = x[m][kidx[j]] (K sorted by group, pads read
// channel 0; their codes dequantize to 0). One thread writes 8 consecutive j of one row.
//
// Why our own kernel instead of torch's index_select: it is launched with PDL (pdl.cuh) and lets the
// GEMM after it launch at once, so at decode sizes the GEMM's first weight loads run while the
// gather waits for x: the gather costs ~1 us instead of a separate launch ahead of the GEMM.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "pdl.cuh"

namespace qlinear_marlin {

constexpr int kGatherThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kGatherThreads) gather_cols_kernel(const T* x, const long long* kidx, T* xp, int M,
                                                                     int K, int Kp) {
  allow_dependent_launch();
  const int j = (blockIdx.x * kGatherThreads + threadIdx.x) * 8;
  long long src[8];
  if (j < Kp) {  // the indices are constants of the layer: read before the wait
#pragma unroll
    for (int i = 0; i < 8; ++i) src[i] = kidx[j + i];
  }
  grid_dependency_wait();
  if (j >= Kp) return;
  for (int m = blockIdx.y; m < M; m += gridDim.y) {
    const T* xr = x + (size_t)m * K;
    uint4 v;
    T* pv = reinterpret_cast<T*>(&v);
#pragma unroll
    for (int i = 0; i < 8; ++i) pv[i] = xr[src[i]];
    *reinterpret_cast<uint4*>(xp + (size_t)m * Kp + j) = v;
  }
}

// Kp a multiple of 8 (it is of 16), xp 16-byte aligned rows.
inline cudaError_t launch_gather(const void* x, const long long* kidx, void* xp, int M, int K, int Kp, int dtype,
                                 bool pdl, cudaStream_t stream) {
  const dim3 grid((Kp / 8 + kGatherThreads - 1) / kGatherThreads, M < 64 ? M : 64);
  if (dtype == 0)
    return launch_pdl(gather_cols_kernel<__half>, grid, dim3(kGatherThreads), stream, pdl, static_cast<const __half*>(x),
                      kidx, static_cast<__half*>(xp), M, K, Kp);
  return launch_pdl(gather_cols_kernel<__nv_bfloat16>, grid, dim3(kGatherThreads), stream, pdl,
                    static_cast<const __nv_bfloat16*>(x), kidx, static_cast<__nv_bfloat16*>(xp), M, K, Kp);
}

}  // namespace qlinear_marlin
