// The act-order gathers ahead of the integer-code decode kernel or GEMM (W4A16 / W8A16 extensions'
// w4a16_gather): x's columns in the weight's sorted K order, PDL-launched like the decode kernel
// (w4a16_decode.cuh, whose launch helpers they use). Plain CUDA; included by w4a16_decode_<act>.cu and
// w8a16_decode_<act>.cu only, so the float-code extensions do not carry them.
#pragma once

#include "w4a16_decode.cuh"

namespace qlinear_cutlass {
namespace w4a16_decode_impl {

// Act-order: x's columns gathered into the weight's sorted K order (out[r][i] = x[r][perm[i]], perm as
// uint16: K <= 65536, a quarter of int64's bytes), as a programmatic dependent of the kernel before it
// and letting the kernel after it (decode or GEMM) launch at once: the decode kernel's first weight
// loads overlap this gather instead of waiting for it (a plain index_select between the two cost ~5 us
// a layer at M = 1 on the H200, docs/gpu-results.md). Two kernels, the caller picks by M
// (configs.W4A16_GATHER_STAGED_MIN_M):
// - gather_kernel, a thread per element (row blockIdx.y): few rows. A thread per column looping over the
//   rows cost 1.6x the plain layer at M = 16 on 4096x14336.
// - gather_rows_kernel, blocks per row: the row lands in shared memory through 16-byte cp.async copies
//   (all in flight at once), then is written in order, 8 values (one 16-byte store) a thread. Reading x
//   scattered, a 32-byte sector per 2-byte value, made the per-element kernel and index_select 2.5-5x
//   slower from M = 256 up (H200, K = 14336, M = 2048: 174 / 174 against 37 us; twelfth lease). A thread
//   reads the indices of its next 4 stores together, its first 4 before griddepcontrol.wait (the
//   permutation is constant); up to M = 256 the 4 after them are read while it stores (kAhead), and a
//   row's output is split over up to 8 blocks (each stages the whole row). One block a row reading one
//   index per store left 64 SMs working and a global-load latency per store at M = 64: 2.0 / 4.1 / 6.9
//   us on K = 4096 / 14336 / 28672, now 1.7 / 3.1 / 5.1 (H200, sixteenth lease). Past M = 256 the grid
//   is large and occupancy hides the latency: no second set of indices, eight blocks an SM (the
//   registers of kAhead cost K = 4096, M = 4096 8 %).
template <typename T>
__global__ void __launch_bounds__(256) gather_kernel(T* __restrict__ out, const T* __restrict__ x, const uint16_t* __restrict__ perm,
                                                     int k, int64_t lda) {
  allow_dependent_launch();
  const int i = blockIdx.x * 256 + threadIdx.x, r = blockIdx.y;
  const int src = i < k ? __ldg(perm + i) : 0;  // the permutation is constant: read before the wait
  grid_dependency_wait();
  if (i < k) out[(size_t)r * k + i] = x[(size_t)r * lda + src];
}

constexpr int kGatherRowThreads = 256;
constexpr int kGatherBatch = 4;  // 16-byte stores a thread whose indices are read together
constexpr int kGatherDefaultSmem = 48 * 1024;  // dynamic shared memory a kernel gets without the opt-in

// Block (r, y): row r's 16-byte output units [y * share8, (y + 1) * share8).
template <bool kAhead>
__global__ void __launch_bounds__(kGatherRowThreads, kAhead ? 1 : 8)
    gather_rows_kernel(uint4* __restrict__ out, const uint4* __restrict__ x, const uint4* __restrict__ perm, int k, int64_t lda8,
                       int share8) {
  extern __shared__ uint4 row[];  // k 16-bit values
  allow_dependent_launch();
  const int k8 = k / 8;
  const int hi = min((int)(blockIdx.y + 1) * share8, k8);
  int i0 = blockIdx.y * share8 + threadIdx.x;
  uint4 p[kGatherBatch];  // the indices (8 a unit) of this thread's next kGatherBatch units
  auto load_indices = [&](int first) {
#pragma unroll
    for (int u = 0; u < kGatherBatch; ++u) {
      const int i = first + u * kGatherRowThreads;
      p[u] = i < hi ? __ldg(perm + i) : make_uint4(0u, 0u, 0u, 0u);
    }
  };
  load_indices(i0);  // constant: before waiting on the kernel that writes x
  const uint4* xr = x + (size_t)blockIdx.x * lda8;
  grid_dependency_wait();
  for (int i = threadIdx.x; i < k8; i += kGatherRowThreads) {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(row + i));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(xr + i));
  }
  asm volatile("cp.async.wait_all;\n" ::);
  __syncthreads();
  const uint16_t* st = reinterpret_cast<const uint16_t*>(row);
  uint4* outr = out + (size_t)blockIdx.x * k8;
  for (; i0 < hi; i0 += kGatherBatch * kGatherRowThreads) {
    uint4 q[kGatherBatch];
#pragma unroll
    for (int u = 0; u < kGatherBatch; ++u) q[u] = p[u];
    const int next = i0 + kGatherBatch * kGatherRowThreads;
    if (kAhead && next < hi) load_indices(next);  // the next batch in flight while this one is stored
#pragma unroll
    for (int u = 0; u < kGatherBatch; ++u) {
      const int i = i0 + u * kGatherRowThreads;
      if (i >= hi) break;
      const uint32_t pw[4] = {q[u].x, q[u].y, q[u].z, q[u].w};
      uint32_t w[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) w[j] = st[pw[j] & 0xFFFF] | (uint32_t)st[pw[j] >> 16] << 16;
      outr[i] = make_uint4(w[0], w[1], w[2], w[3]);
    }
    if (!kAhead && next < hi) load_indices(next);
  }
}

// Blocks a row's output is split over: about two blocks an SM on 132 SMs in all, at least a unit a
// thread each, at most 8 (each stages the whole row).
inline int gather_row_splits(int m, int k) {
  return max(1, min(8, min(256 / max(m, 1), k / 8 / kGatherRowThreads)));
}
constexpr int kGatherAheadMaxM = 256;

// Whether gather_rows_kernel can take this call: x, out and perm aligned for 16-byte copies, K a
// multiple of 8, a row within the shared memory of a block (K <= ~116k on Hopper with the opt-in).
inline bool gather_rows_fits(W4A16GatherArgs const& a, int max_smem) {
  const auto aligned = [](void const* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return a.k % 8 == 0 && a.lda % 8 == 0 && aligned(a.x) && aligned(a.out) && aligned(a.perm) && 2 * (int64_t)a.k <= max_smem;
}

// The most dynamic shared memory gather_rows_kernel may take on the current device: past the default
// 48 KB (K > 24576) only after the opt-in, made once per device. `static`: the opt-in belongs to this
// extension's copy of the kernel, so the cache must be this extension's too; a static local of an
// inline function is one object across every extension loaded in the process (a GNU unique symbol),
// and the fp16 extension then skipped its own opt-in (H200, twelfth lease: its launch failed).
static inline cudaError_t gather_rows_smem_limit(int& max_smem) {
  static int opted[64] = {0};
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess || dev < 0 || dev >= 64) return e;  // an unlikely device index keeps the default
  if (!opted[dev]) {
    int cap = 0;
    if ((e = cudaDeviceGetAttribute(&cap, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) != cudaSuccess) return e;
    if ((e = cudaFuncSetAttribute(gather_rows_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, cap)) != cudaSuccess ||
        (e = cudaFuncSetAttribute(gather_rows_kernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, cap)) != cudaSuccess)
      return e;
    opted[dev] = cap;
  }
  max_smem = opted[dev];
  return cudaSuccess;
}

static inline char const* launch_gather(W4A16GatherArgs const& a, cudaStream_t stream) {
  using U = unsigned short;  // 16-bit values are moved, not interpreted
  const int smem = 2 * a.k;
  int max_smem = kGatherDefaultSmem;
  if (a.staged && smem > max_smem && gather_rows_smem_limit(max_smem) != cudaSuccess)
    return "the act-order gather: the shared-memory opt-in failed";
  const int splits = gather_row_splits(a.m, a.k), share8 = (a.k / 8 + splits - 1) / splits;
  const dim3 rows_grid(a.m, splits);
  const auto x8 = static_cast<const uint4*>(a.x);
  const auto perm8 = reinterpret_cast<const uint4*>(a.perm);
  const cudaError_t e =
      !(a.staged && gather_rows_fits(a, max_smem))
          ? launch_pdl(gather_kernel<U>, dim3((a.k + 255) / 256, a.m), dim3(256), 0, stream, a.pdl != 0, 1, static_cast<U*>(a.out),
                       static_cast<const U*>(a.x), a.perm, a.k, a.lda)
      : a.m <= kGatherAheadMaxM
          ? launch_pdl(gather_rows_kernel<true>, rows_grid, dim3(kGatherRowThreads), smem, stream, a.pdl != 0, 1,
                       static_cast<uint4*>(a.out), x8, perm8, a.k, a.lda / 8, share8)
          : launch_pdl(gather_rows_kernel<false>, rows_grid, dim3(kGatherRowThreads), smem, stream, a.pdl != 0, 1,
                       static_cast<uint4*>(a.out), x8, perm8, a.k, a.lda / 8, share8);
  if (e == cudaSuccess) return nullptr;
  (void)cudaGetLastError();  // raised as our error; left set, torch's next launch check would report it
  return "the act-order gather's launch failed";
}

}  // namespace w4a16_decode_impl
}  // namespace qlinear_cutlass
