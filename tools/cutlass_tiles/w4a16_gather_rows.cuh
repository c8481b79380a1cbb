// A candidate act-order gather for the GEMM's calls (M > 16), NOT in the provider: measured nowhere yet
// (the session that wrote it had no device time left). `tools.cutlass_w4a16_gather_bench` builds it beside
// the provider's gather (csrc/w4a16_decode.cuh launch_gather) and times both against index_select.
//
// Why: the provider's gather (a thread per element) and index_select both read x scattered along a row,
// one 32-byte sector per 2-byte value; on the H200 act-order at M = 2048 cost the GEMM's layer 1.3-1.4x
// the plain one (4096x14336: 449-457 against 314 us), most of it the gather.
#pragma once

#include "w4a16_decode.cuh"

namespace qlinear_cutlass {
namespace w4a16_gather_rows {

using w4a16_decode_impl::allow_dependent_launch;
using w4a16_decode_impl::grid_dependency_wait;

// A block copies ROWS whole rows of x into shared memory with 16-byte loads, then writes each gathered
// row in order, two values a thread (perm read once per ROWS rows).
constexpr int kGatherThreads = 256;
constexpr int kGatherSmemMax = 96 * 1024;  // bytes of rows a block stages (two blocks an SM)

__global__ void __launch_bounds__(kGatherThreads) gather_rows_kernel(uint32_t* __restrict__ out, const uint4* __restrict__ x,
                                                                     const int64_t* __restrict__ perm, int m, int k,
                                                                     int64_t lda8, int rows) {
  extern __shared__ uint4 stage[];  // rows x k 16-bit values
  allow_dependent_launch();
  const int r0 = blockIdx.x * rows, nr = min(rows, m - r0), k8 = k / 8;
  grid_dependency_wait();
  for (int rr = 0; rr < nr; ++rr)
    for (int i = threadIdx.x; i < k8; i += kGatherThreads) stage[rr * k8 + i] = __ldg(x + (size_t)(r0 + rr) * lda8 + i);
  __syncthreads();
  const unsigned short* st = reinterpret_cast<const unsigned short*>(stage);
  const longlong2* perm2 = reinterpret_cast<const longlong2*>(perm);
  for (int i = threadIdx.x; i < k / 2; i += kGatherThreads) {
    const longlong2 src = __ldg(perm2 + i);
    for (int rr = 0; rr < nr; ++rr)
      out[((size_t)(r0 + rr) * k) / 2 + i] = st[rr * k + src.x] | (uint32_t)st[rr * k + src.y] << 16;
  }
}

// Rows a gather_rows_kernel block stages (0: K too long for shared memory, or x not 16-byte aligned):
// as many as shared memory holds (at most 8), but no fewer blocks than two per SM of an H100/H200.
inline int gather_rows_per_block(W4A16GatherArgs const& a) {
  const bool aligned = a.k % 8 == 0 && a.lda % 8 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(a.perm) % 16 == 0;
  const int64_t row_bytes = 2 * (int64_t)a.k;
  if (!aligned || row_bytes > kGatherSmemMax) return 0;
  return (int)max((int64_t)1, min(min((int64_t)8, kGatherSmemMax / row_bytes), (int64_t)a.m / 264));
}

inline char const* launch(W4A16GatherArgs const& a, cudaStream_t stream) {
  const int rows = gather_rows_per_block(a);
  if (rows == 0) return "gather_rows: K too long for shared memory, or x / perm not 16-byte aligned";
  static bool opted_in = false;  // > 48 KB of dynamic shared memory needs the opt-in (one device here)
  if (!opted_in && cudaFuncSetAttribute(gather_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kGatherSmemMax) != cudaSuccess)
    return "gather_rows: the shared-memory opt-in failed";
  opted_in = true;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((a.m + rows - 1) / rows);
  cfg.blockDim = dim3(kGatherThreads);
  cfg.dynamicSmemBytes = rows * a.k * 2;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = a.pdl ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, gather_rows_kernel, static_cast<uint32_t*>(a.out), static_cast<const uint4*>(a.x),
                                           a.perm, a.m, a.k, a.lda / 8, rows);
  return e == cudaSuccess ? nullptr : "gather_rows: the launch failed";
}

}  // namespace w4a16_gather_rows
}  // namespace qlinear_cutlass
