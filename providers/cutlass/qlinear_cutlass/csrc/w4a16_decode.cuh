// Decode kernel for the W4A16 GEMM's own weight layout (w4a16_layout.py), M <= 16: one weight copy
// serves both this kernel (token generation) and the CUTLASS mixed-input GEMM (w4a16.cuh, M > 16).
//
// Why a second kernel: the register-sourced wgmma of the GEMM computes whole 64-row warpgroup tiles
// of weights against a token tile of at least 8 rows through a 3-warpgroup pipeline; at M = 1 it
// streams the weight at ~1.3 TB/s. A decode step wants every weight byte read once at the memory
// floor, with the dequantization hidden under the loads. Here:
//   * the layout's reorder atom (16 weight rows x 16 k, 128 bytes) holds in its word `lane` exactly
//     lane's A fragment of an mma.sync m16n8k16 (rows g, g+8 of the atom = lane / 4; k 2t, 2t+1,
//     2t+8, 2t+9 with t = lane % 4; nibble 4c + 2e + b = row g + 8b, k 2t + c + 8e). So a warp reads
//     one atom as one coalesced 128-byte load (4 bytes a lane) straight into its A registers, never
//     through shared memory, and the activation is the B operand (8 rows of x: M is not padded to 16);
//   * codes are not turned into weights: the stored nibble is q ^ 8 (q the uint4 code, the GEMM wants
//     signed int4), so ((nibble | MAGIC) ^ 8) = MAGIC + q exactly, in one LOP3 per two values; the mma
//     sums x (MAGIC + q) in fp32 per scale group, one more mma with an all-ones A gives sum(x), and the
//     group's share is s (sum x (MAGIC + q) - (MAGIC + 8) sum x) + zt sum x, with zt the GEMM's own
//     additive zero term ((8 - z) s, AWQ) or 0: two or three FMAs per output per group;
//   * a warp loads a chunk of 8 k blocks (128 k) for 64 output columns (4 atoms, 16 loads of 128
//     bytes) and, as soon as k block i of it is in the mma, k block i of its next chunk into the same
//     registers: a whole chunk in flight while one computes, no second buffer, two 8-warp blocks an SM.
//
// Work split: a block of WARPS warps owns 64 output columns, 8 ROWS rows of x and a K slice of whole
// chunks (ROWS = 2 for M 9..16: each atom decoded once feeds two mmas, one per 8 rows of x, where two
// 8-row blocks per column tile decoded every weight twice); its warps take the slice's chunks
// round-robin and add their sums in shared memory in warp order; K slices (split-K, as many as fill
// one wave) are added in slice order: through distributed shared memory when the tile's slices run as
// one thread-block cluster (2-8 slices, every cluster resident at once), else through a workspace plane
// per slice that the tile's last block adds. Both sum the same values in the same order: deterministic,
// and the same bits either way. The cluster path saves the workspace's global round trips (store,
// fence, counter atomic, reload): 1-2 us a layer where split-K is taken (H200, docs/gpu-results.md,
// fifteenth lease).
//
// Launched as a programmatic dependent (PDL, sm_90): the first chunk's weights and scales are loaded
// before griddepcontrol.wait, activations read and outputs written after it, so at decode sizes (a
// layer is a few us) one layer's weight stream starts under the previous kernel's tail.
//
// Plain CUDA (no CUTLASS): its own translation unit per activation dtype (w4a16_decode_<act>.cu).
#pragma once

#include <cstdint>

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "w4a16_api.h"

namespace qlinear_cutlass {
namespace w4a16_decode_impl {

constexpr int kTileN = 64;   // output columns of a block: 4 reorder atoms of 16
constexpr int kAtoms = kTileN / 16;
constexpr int kChunk = 8;    // k blocks of 16 a warp loads at once (128 k)
constexpr int kAtomWords = 32;  // 128 bytes: one word per lane

template <typename T>
struct Traits;

template <>
struct Traits<__half> {
  static constexpr uint32_t kMagicXor = 0x64086408u;  // 1024.0 in each half, and bit 3 to undo q ^ 8
  static constexpr float kOffset = 1032.f;             // MAGIC + 8
  static constexpr float kOffset8 = 1152.f;            // 8-bit codes: 1024 + 128
  // 8-bit codes: an A register's two bytes (selected by SEL from an atom word) as 1024 + q in each half:
  // byte | 0x6400, then ^ 0x80 undoes the stored q ^ 0x80. One A fragment, one mma.
  static constexpr int kFrags8 = 1;
  template <uint32_t SEL>
  static __device__ __forceinline__ void bytes_to_a(uint32_t w, uint32_t (&a)[kFrags8]) {
    a[0] = __byte_perm(w, 0x64646464u, SEL) ^ 0x00800080u;
  }
  static constexpr uint32_t kOnes = 0x3C003C00u;
  static __device__ __forceinline__ void mma(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ float to_float(unsigned short h) { return __half2float(__ushort_as_half(h)); }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};

template <>
struct Traits<__nv_bfloat16> {
  static constexpr uint32_t kMagicXor = 0x43084308u;  // 128.0 in each bfloat16, and bit 3
  static constexpr float kOffset = 136.f;
  // 8-bit codes do not fit bf16's 7-bit mantissa as MAGIC + q: q = 16 hi + lo goes in as two A
  // fragments summed by two mmas into one accumulator, 128 + lo (0x4300 | lo) and 256 + 16 hi (0x4380 |
  // hi << 3: at exponent 8 a mantissa step is 2), so the sums hold x (384 + q); offset 384 + 128.
  static constexpr float kOffset8 = 512.f;
  static constexpr int kFrags8 = 2;
  template <uint32_t SEL>
  static __device__ __forceinline__ void bytes_to_a(uint32_t w, uint32_t (&a)[kFrags8]) {
    const uint32_t v = __byte_perm(w, 0u, SEL);  // the two bytes at bits 0 and 16
    uint32_t lo, hi;
    asm("lop3.b32 %0, %1, %2, %3, 0x6A;\n" : "=r"(lo) : "r"(v), "n"(0x000F000Fu), "n"(0x43004300u));  // (v & F) ^ 128
    // the stored byte is q ^ 0x80: its high nibble is hi ^ 8, so bit 6 of (hi ^ 8) << 3 is flipped back
    asm("lop3.b32 %0, %1, %2, %3, 0x6A;\n" : "=r"(hi) : "r"(v >> 1), "n"(0x00780078u), "n"(0x43C043C0u));
    a[0] = lo, a[1] = hi;
  }
  static constexpr uint32_t kOnes = 0x3F803F80u;
  static __device__ __forceinline__ void mma(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ float to_float(unsigned short h) { return __uint_as_float((uint32_t)h << 16); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

// (q & 0x000F000F) ^ X in one LOP3 (truth table 0x6A = (a & b) ^ c): two nibbles -> MAGIC + code.
template <uint32_t X>
__device__ __forceinline__ uint32_t nibbles_to_magic(uint32_t q) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0x6A;\n" : "=r"(r) : "r"(q), "n"(0x000F000Fu), "n"(X));
  return r;
}

__device__ __forceinline__ uint32_t ld_stream(const uint32_t* p) {
  uint32_t v;  // read once: bypass L1, the weight never fits anyway
  asm volatile("ld.global.nc.L1::no_allocate.b32 %0, [%1];\n" : "=r"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ uint2 ld_stream(const uint2* p) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.v2.b32 {%0,%1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "l"(p));
  return v;
}

__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The launch attribute of clusters of `y` blocks along y.
inline cudaLaunchAttribute cluster_along_y(int y) {
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = 1, attr.val.clusterDim.y = y, attr.val.clusterDim.z = 1;
  return attr;
}

// `kern<<<grid, block, smem, stream>>>(args...)`, as a programmatic dependent of the previous kernel when
// `pdl`, in clusters of `cluster_y` blocks along y when it is above 1.
template <typename... Args>
cudaError_t launch_pdl(void (*kern)(Args...), dim3 grid, dim3 block, int smem, cudaStream_t stream, bool pdl, int cluster_y,
                       Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  int n = 0;
  if (pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster_y > 1) attr[n++] = cluster_along_y(cluster_y);
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kern, args...);
}

struct Params {
  int m, n, k, group;
  int64_t lda, ldd;  // row strides of x and out (elements)
  const void* x;
  const void* w;
  const void* scale;
  const void* zero;
  const void* bias;
  void* out;
  float* ws;  // [splits][M][N] fp32 partial sums
  int* counters;  // one per (column tile, row block), zero between calls (the last block resets its own)
  float alpha;  // float codes (float_decode.cuh): the fp32 factor on the sums; unused by integer codes
  int row_blocks;    // blocks along M (8 ROWS rows each): 1, or 2 for M 9..16 with ROWS = 1
  int slice_chunks;  // chunks of a K slice
  int splits;
  int cluster;       // 1: a tile's K slices are one thread-block cluster, added through distributed shared memory
};

// The end of a block: each warp's fp32 sums acc[r][j][i] (the mma C fragment: output column n0 + 16 j +
// g (+8 for i >= 2), row row0 + 8 r + 2 t + i % 2) to shared memory, added in warp order; then, split-K, the
// K slices added in slice order (in the cluster's shared memory, or a plane per slice in ws added by the
// tile's last block); bias, rounding, store. Deterministic.
template <typename T, int WARPS, int ROWS>
__device__ __forceinline__ void block_finish(const Params& p, const float (&acc)[ROWS][kAtoms][4]) {
  using Tr = Traits<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int ntile = blockIdx.x / p.row_blocks, rblk = blockIdx.x % p.row_blocks;
  const int row0 = 8 * ROWS * rblk, n0 = ntile * kTileN;
  __shared__ float partial[WARPS][8 * ROWS][kTileN];
  __shared__ float red[8 * ROWS * kTileN];
  __shared__ int is_last;
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int j = 0; j < kAtoms; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[warp][8 * r + 2 * t + (i % 2)][16 * j + 8 * (i / 2) + g] = acc[r][j][i];
  __syncthreads();
  const int rows = min(8 * ROWS, p.m - row0);
  for (int i = threadIdx.x; i < rows * kTileN; i += WARPS * 32) {
    float v = 0.f;
#pragma unroll
    for (int ww = 0; ww < WARPS; ++ww) v += partial[ww][i / kTileN][i % kTileN];
    red[i] = v;
  }
  const T* bias = static_cast<const T*>(p.bias);
  T* out = static_cast<T*>(p.out);
  auto store = [&](int i, float v) {  // output i of the tile (row i / kTileN): bias, rounding, store
    const int col = n0 + i % kTileN;
    if (bias) v += Tr::to_float(reinterpret_cast<const unsigned short*>(bias)[col]);
    out[(size_t)(row0 + i / kTileN) * p.ldd + col] = Tr::from_float(v);
  };
  if (p.splits > 1 && p.cluster) {
    // The tile's K slices are one cluster (rank = slice): once every slice's sums are in its shared
    // memory, each block adds its share of the tile's outputs from all of them in slice order (the sum
    // and order of the workspace path below, so the same bits) and stores it; no global round trips.
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
    const int total = rows * kTileN, share = (total + p.splits - 1) / p.splits;
    const int lo = blockIdx.y * share, hi = min(lo + share, total);
    for (int i = lo + threadIdx.x; i < hi; i += WARPS * 32) {
      float v = 0.f;
      for (int sl = 0; sl < p.splits; ++sl) v += cluster.map_shared_rank(red, sl)[i];
      store(i, v);
    }
    cluster.sync();  // no block leaves while another may still read its sums
    return;
  }
  if (p.splits > 1) {  // K slices: a plane each in ws, the tile's last block adds them in slice order
    const size_t plane = (size_t)p.m * p.n;
    __syncthreads();
    for (int i = threadIdx.x; i < rows * kTileN; i += WARPS * 32)
      __stcg(&p.ws[blockIdx.y * plane + (size_t)(row0 + i / kTileN) * p.n + n0 + i % kTileN], red[i]);
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) is_last = atomicAdd(&p.counters[blockIdx.x], 1) == p.splits - 1;
    __syncthreads();
    if (!is_last) return;
    __threadfence();
    for (int i = threadIdx.x; i < rows * kTileN; i += WARPS * 32) {
      const float* wp = &p.ws[(size_t)(row0 + i / kTileN) * p.n + n0 + i % kTileN];
      float v = 0.f;
      for (int sl = 0; sl < p.splits; ++sl) v += __ldcg(wp + sl * plane);
      red[i] = v;
    }
    if (threadIdx.x == 0) p.counters[blockIdx.x] = 0;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < rows * kTileN; i += WARPS * 32) store(i, red[i]);
}

// Scale-group handling, fixed per instantiation: FOLD = k blocks between folds, 8 when every group is
// whole chunks (group a multiple of 128, per channel included), 4 when groups are 64-k multiples that
// are not (a half chunk never straddles two groups).
//
// BITS = 8 (W8A16: uint8b128 codes in the int8 atom of w4a16_layout.py, 256 bytes, lane's 8 bytes
// contiguous: word e = bytes (rows g, g+8) x (k 2t + 8e, 2t + 1 + 8e), A registers {bytes 0, 2 of word 0},
// {1, 3 of 0}, {0, 2 of 1}, {1, 3 of 1}): 8 bytes a lane per atom, chunks of 4 k blocks (64 k: the same
// 32 registers in flight), a fold per chunk (groups are whole 64-k blocks), no zero points; the w8a16
// extensions' w8a16_decode (CutlassW8A16LinearKernel up to M = 8 or 16, configs.w4a16_decode_max_m).
//
// ROWS = 2 (M 9..16): the sums and x fragments of both 8-row halves (~190 registers): one 8-warp block
// an SM instead of two. Measured on the H200 against two 8-row blocks per column tile: faster at M 9..12
// (6144x4096 9.8 vs 10.6 us, 28672x4096 28.2 vs 31.9), at 16 (4096x4096 10.1 vs 9.4, 28672x4096
// 32.8 vs 34.6: within 8 % either way); halving the chunk to fit 128 registers and two blocks was slower
// (docs/gpu-results.md, eleventh lease).
template <int BITS>
__host__ __device__ constexpr int chunk_blocks() { return BITS == 4 ? kChunk : 4; }

// Blocks an SM must hold (the register cap of __launch_bounds__): two 8-warp blocks with one 8-row
// block of x (<= 128 registers); with ROWS = 2 the doubled sums and x fragments need ~190, one 8-warp block.
template <int WARPS, int ROWS>
__host__ __device__ constexpr int min_blocks() { return (ROWS == 1 ? 16 : 8) / WARPS; }

template <typename T, int WARPS, bool ZERO, int FOLD, int BITS = 4, int ROWS = 1>
__global__ void __launch_bounds__(WARPS * 32, min_blocks<WARPS, ROWS>()) decode_kernel(const Params p) {
  using Tr = Traits<T>;
  constexpr int kCh = chunk_blocks<BITS>();
  static_assert(kCh % FOLD == 0, "a fold never spans two chunks");
  using WT = std::conditional_t<BITS == 4, uint32_t, uint2>;  // a lane's share of one atom
  allow_dependent_launch();  // the next PDL kernel may take SMs as our blocks leave
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int ntile = blockIdx.x / p.row_blocks, rblk = blockIdx.x % p.row_blocks;
  const int row0 = 8 * ROWS * rblk, n0 = ntile * kTileN;
  const int chunks = p.k / (16 * kCh);
  const int c_lo = blockIdx.y * p.slice_chunks;
  const int n_chunks = min(c_lo + p.slice_chunks, chunks) - c_lo;
  // one k block of every atom: N / 16 atoms x 32 words (int4) or 32 uint2 (int8): 2 N units of WT
  const size_t kb_words = (size_t)2 * p.n;
  // lane's share of atom 4 ntile + j at k block kb: wt + kb * kb_words + 32 j
  constexpr int kAtomWT = kAtomWords;
  const WT* wt = reinterpret_cast<const WT*>(p.w) + (size_t)ntile * kAtoms * kAtomWT + lane;
  const unsigned short* sc = static_cast<const unsigned short*>(p.scale) + n0 + g;
  const unsigned short* zc = static_cast<const unsigned short*>(p.zero) + n0 + g;
  // B fragments of 8-row block r: x[row][k 2t, 2t+1] and [k 2t+8, 2t+9] of row row0 + 8 r + g. Rows past
  // M read row 0: a row of x only feeds its own output row, which is never stored.
  const T* xrow[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int row = row0 + 8 * r + g;
    xrow[r] = static_cast<const T*>(p.x) + (size_t)(row < p.m ? row : 0) * p.lda + 2 * t;
  }
  const uint32_t ones[4] = {Tr::kOnes, Tr::kOnes, Tr::kOnes, Tr::kOnes};

  float acc[ROWS][kAtoms][4], gacc[ROWS][kAtoms][4], xs[ROWS][4];
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      xs[r][i] = 0.f;
#pragma unroll
      for (int j = 0; j < kAtoms; ++j) acc[r][j][i] = gacc[r][j][i] = 0.f;
    }

  // a group's scales (and zero terms) for this lane: columns n0 + 16 j + 8 h + g, entry 2 j + h
  // (two 16-bit values a register: entry 2 j + h in the half h of word j)
  uint32_t sv[kAtoms], zv[kAtoms];
  auto group_values = [&](int kb) {  // the group holding k block kb
    const size_t row_off = (size_t)(kb * 16 / p.group) * p.n;
#pragma unroll
    for (int j = 0; j < kAtoms; ++j) {
      sv[j] = __ldg(sc + row_off + 16 * j) | (uint32_t)__ldg(sc + row_off + 16 * j + 8) << 16;
      if constexpr (ZERO) zv[j] = __ldg(zc + row_off + 16 * j) | (uint32_t)__ldg(zc + row_off + 16 * j + 8) << 16;
    }
  };
  auto fold = [&]() {
#pragma unroll
    for (int j = 0; j < kAtoms; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float s = Tr::to_float((unsigned short)(sv[j] >> (16 * h)));
        const float z = ZERO ? Tr::to_float((unsigned short)(zv[j] >> (16 * h))) : 0.f;
#pragma unroll
        for (int r = 0; r < ROWS; ++r)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float v = fmaf(s, fmaf(-(BITS == 4 ? Tr::kOffset : Tr::kOffset8), xs[r][e], gacc[r][j][2 * h + e]), acc[r][j][2 * h + e]);
            if constexpr (ZERO) v = fmaf(z, xs[r][e], v);
            acc[r][j][2 * h + e] = v;
            gacc[r][j][2 * h + e] = 0.f;
          }
      }
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
      for (int i = 0; i < 4; ++i) xs[r][i] = 0.f;
  };

  WT w[kCh][kAtoms];
  uint32_t b[kCh][ROWS][2];
  auto load_w = [&](const WT* wc, int i) {
#pragma unroll
    for (int j = 0; j < kAtoms; ++j) w[i][j] = ld_stream(wc + i * kb_words + j * kAtomWT);
  };
  auto load_x = [&](const T* const (&xc)[ROWS], int i) {
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const unsigned int* xp = reinterpret_cast<const unsigned int*>(xc[r] + i * 16);
      b[i][r][0] = __ldg(xp);
      b[i][r][1] = __ldg(xp + 4);  // k + 8
    }
  };

  int c = warp;
  const WT* wc = wt + (size_t)(c_lo + c) * kCh * kb_words;
  const T* xc[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) xc[r] = xrow[r] + (size_t)(c_lo + c) * kCh * 16;
  // the first chunk's weights and scales before waiting for the previous kernel, activations after
  if (c < n_chunks) {
#pragma unroll
    for (int i = 0; i < kCh; ++i) load_w(wc, i);
    group_values((c_lo + c) * kCh);
  }
  grid_dependency_wait();
  if (c < n_chunks) {
#pragma unroll
    for (int i = 0; i < kCh; ++i) load_x(xc, i);
  }
  for (; c < n_chunks; c += WARPS) {
    const int kb0 = (c_lo + c) * kCh;
    const bool has_next = c + WARPS < n_chunks;
    wc += (size_t)WARPS * kCh * kb_words;
#pragma unroll
    for (int r = 0; r < ROWS; ++r) xc[r] += WARPS * kCh * 16;
#pragma unroll
    for (int i = 0; i < kCh; ++i) {
#pragma unroll
      for (int j = 0; j < kAtoms; ++j) {
        if constexpr (BITS == 4) {
          const uint32_t q = w[i][j];
          // nibbles (0, 4): rows g, k 2t..; (1, 5): rows g+8; (2, 6): rows g, k+8; (3, 7): rows g+8, k+8
          const uint32_t a[4] = {nibbles_to_magic<Tr::kMagicXor>(q), nibbles_to_magic<Tr::kMagicXor>(q >> 4),
                                 nibbles_to_magic<Tr::kMagicXor>(q >> 8), nibbles_to_magic<Tr::kMagicXor>(q >> 12)};
#pragma unroll
          for (int r = 0; r < ROWS; ++r) Tr::mma(gacc[r][j], a, b[i][r]);
        } else {
          // A registers: bytes (0, 2) and (1, 3) of word 0 (k 2t, 2t+1: rows g, g+8), then of word 1 (k + 8)
          uint32_t r0[Tr::kFrags8], r1[Tr::kFrags8], r2[Tr::kFrags8], r3[Tr::kFrags8];
          Tr::template bytes_to_a<0x4240>(w[i][j].x, r0);
          Tr::template bytes_to_a<0x4341>(w[i][j].x, r1);
          Tr::template bytes_to_a<0x4240>(w[i][j].y, r2);
          Tr::template bytes_to_a<0x4341>(w[i][j].y, r3);
#pragma unroll
          for (int f = 0; f < Tr::kFrags8; ++f) {
            const uint32_t a[4] = {r0[f], r1[f], r2[f], r3[f]};
#pragma unroll
            for (int r = 0; r < ROWS; ++r) Tr::mma(gacc[r][j], a, b[i][r]);
          }
        }
      }
#pragma unroll
      for (int r = 0; r < ROWS; ++r) Tr::mma(xs[r], ones, b[i][r]);
      if (has_next) {
        load_w(wc, i);
        load_x(xc, i);
      }
      if (i % FOLD == FOLD - 1) {
        fold();
        if (i != kCh - 1) group_values(kb0 + i + 1);  // FOLD 4 of int4: the chunk's second half
      }
    }
    if (has_next) group_values(kb0 + WARPS * kCh);
  }

  block_finish<T, WARPS, ROWS>(p, acc);
}

// Blocks of `Kern` resident on the current device at once (the occupancy calculator), once per device.
template <auto Kern>
cudaError_t resident_blocks(int device, int threads, int sm_count, int& resident) {
  static int cached[64] = {0};
  if (device >= 0 && device < 64 && cached[device]) {
    resident = cached[device];
    return cudaSuccess;
  }
  int per_sm = 0;
  const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kern, threads, 0);
  if (e != cudaSuccess) return e;
  if (per_sm < 1) return cudaErrorInvalidConfiguration;
  resident = per_sm * sm_count;
  if (device >= 0 && device < 64) cached[device] = resident;
  return cudaSuccess;
}

// Clusters of `slices` blocks along y of `Kern` resident on the current device at once, once per (device, slices).
template <auto Kern>
cudaError_t resident_clusters(int device, int threads, int slices, int& resident) {
  static int cached[64][9] = {};
  if (device >= 0 && device < 64 && slices <= 8 && cached[device][slices]) {
    resident = cached[device][slices] - 1;
    return cudaSuccess;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(1, slices);
  cfg.blockDim = dim3(threads);
  cudaLaunchAttribute attr = cluster_along_y(slices);
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  const cudaError_t e = cudaOccupancyMaxActiveClusters(&resident, Kern, &cfg);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return e;
  }
  if (device >= 0 && device < 64 && slices <= 8) cached[device][slices] = resident + 1;
  return cudaSuccess;
}

constexpr int kMaxClusterSlices = 8;  // the portable cluster size

// K slices: as many as fill one wave of resident blocks (at most one per chunk, at most the planes the
// workspace holds), then evened out so no slice is empty.
inline void choose_splits(Params& p, int resident, int want, int64_t ws_floats, int chunk_blocks) {
  const int tiles = p.n / kTileN * p.row_blocks;
  const int chunks = p.k / (16 * chunk_blocks);
  int splits = want > 0 ? want : (resident > tiles ? resident / tiles : 1);
  splits = min(splits, chunks);
  splits = (int)min((int64_t)splits, max((int64_t)1, ws_floats / ((int64_t)p.m * p.n)));
  if (p.ws == nullptr || p.counters == nullptr) splits = 1;
  p.slice_chunks = (chunks + splits - 1) / splits;
  p.splits = (chunks + p.slice_chunks - 1) / p.slice_chunks;
}

// Launch kernel `Kern` (WARPS warps a block, chunks of CH k blocks): K slices for one wave, PDL.
template <auto Kern, int WARPS, int CH>
char const* launch_kernel(Params p, W4A16DecodeArgs const& a, cudaStream_t stream) {
  int resident = 1;
  if (resident_blocks<Kern>(a.gemm.device, WARPS * 32, a.gemm.sm_count, resident) != cudaSuccess)
    return "the occupancy query of the decode kernel failed";
  choose_splits(p, resident, a.splits, a.ws_floats, CH);
  const dim3 grid(p.n / kTileN * p.row_blocks, p.splits);
  // A cluster's blocks share a GPC, so fewer blocks may be resident in clusters than alone: clusters
  // only when every tile's cluster is resident at once (measured: 4-block clusters over 256 blocks at
  // two an SM, a second partial wave, cost 1.4-1.5x the workspace path).
  int clusters = 0;
  p.cluster = !a.no_cluster && p.splits > 1 && p.splits <= kMaxClusterSlices &&
              resident_clusters<Kern>(a.gemm.device, WARPS * 32, p.splits, clusters) == cudaSuccess && clusters >= (int)grid.x;
  cudaError_t e = launch_pdl(Kern, grid, dim3(WARPS * 32), 0, stream, a.pdl != 0, p.cluster ? p.splits : 1, p);
  if (e != cudaSuccess && p.cluster) {  // clusters refused (e.g. a GPU partition without them): the workspace path
    (void)cudaGetLastError();
    p.cluster = 0;
    e = launch_pdl(Kern, grid, dim3(WARPS * 32), 0, stream, a.pdl != 0, 1, p);
  }
  if (e == cudaSuccess) return nullptr;
  (void)cudaGetLastError();  // raised as our error, not left for torch's next launch check
  return "the decode kernel's launch failed";
}

template <typename T, int WARPS, bool ZERO, int FOLD, int BITS, int ROWS>
char const* launch(Params p, W4A16DecodeArgs const& a, cudaStream_t stream) {
  return launch_kernel<decode_kernel<T, WARPS, ZERO, FOLD, BITS, ROWS>, WARPS, chunk_blocks<BITS>()>(p, a, stream);
}

// Integer codes: the kernel for WARPS warps a block, zero points and fold picked from the call.
template <typename T, int BITS, int ROWS>
struct IntCodes {
  template <int WARPS>
  static constexpr auto probe = decode_kernel<T, WARPS, false, BITS == 4 ? 8 : 4, BITS, ROWS>;  // what the warps rule queries
  template <int WARPS>
  static char const* go(Params const& p, W4A16DecodeArgs const& a, cudaStream_t stream) {
    if constexpr (BITS == 8) {  // chunks of 64 k: a fold per chunk whatever the group; no zero points
      return p.zero ? "the 8-bit decode kernel takes no zero points" : launch<T, WARPS, false, 4, 8, ROWS>(p, a, stream);
    } else {
      const bool whole = p.group % (16 * kChunk) == 0;  // per channel: group == K, a multiple of 128
      if (p.zero) return whole ? launch<T, WARPS, true, 8, 4, ROWS>(p, a, stream) : launch<T, WARPS, true, 4, 4, ROWS>(p, a, stream);
      return whole ? launch<T, WARPS, false, 8, 4, ROWS>(p, a, stream) : launch<T, WARPS, false, 4, 4, ROWS>(p, a, stream);
    }
  }
};

// Warps per block when the caller leaves it (0): 4 when 8-warp blocks over whole K would need more
// than one wave (many column tiles, e.g. 28672 x 4096), so the grid fills the GPU in finer steps; else 8.
// `Codes` names the kernels (IntCodes, or float_decode.cuh's FloatCodes).
template <int ROWS, class Codes>
char const* run_rows(Params& p, W4A16DecodeArgs const& a, cudaStream_t stream) {
  W4A16Args const& g = a.gemm;
  p.row_blocks = (g.m + 8 * ROWS - 1) / (8 * ROWS);
  if ((int64_t)(p.n / kTileN) * p.row_blocks > a.counters_len) p.counters = nullptr;  // too few counters: no split-K
  int warps = a.warps;
  if (warps == 0) {
    int resident8 = 1;
    // (this code's own kernel: querying another would instantiate it in every extension)
    if (resident_blocks<Codes::template probe<8>>(g.device, 256, g.sm_count, resident8) != cudaSuccess)
      return "the occupancy query of the decode kernel failed";
    warps = p.n / kTileN * p.row_blocks > resident8 ? 4 : 8;
  }
  if (warps == 4) return Codes::template go<4>(p, a, stream);
  if (warps == 8) return Codes::template go<8>(p, a, stream);
  return "warps: expected 0, 4 or 8";
}

// The fields of Params the GEMM's arguments fill.
inline Params params_of(W4A16DecodeArgs const& a) {
  W4A16Args const& g = a.gemm;
  Params p{};
  p.m = g.m, p.n = g.n, p.k = g.k, p.group = g.group;
  p.lda = g.lda, p.ldd = g.ldd;
  p.x = g.x, p.w = g.w, p.scale = g.scale, p.zero = g.zero, p.bias = g.bias, p.out = g.out;
  p.alpha = g.alpha;
  p.ws = a.ws, p.counters = a.counters;
  return p;
}

// 8-row blocks of x per block (a.rows; 0 = the rule): 2 for M 9..16 (an atom decoded once for all 16
// rows), else 1.
template <typename T, int BITS = 4>
char const* run(W4A16DecodeArgs const& a, cudaStream_t stream) {
  W4A16Args const& g = a.gemm;
  if (BITS == 4 && !w4a16_decode_applies(g.m, g.n, g.k, g.group)) return "the decode kernel takes M <= 16, N a multiple of 64, K of 128";
  if (BITS == 8 && !w8a16_decode_applies(g.m, g.n, g.k, g.group)) return "the decode kernel takes M <= 16, N a multiple of 64, K of 64";
  Params p = params_of(a);
  const int rows = a.rows ? a.rows : (g.m > 8 ? 2 : 1);
  if (rows == 1) return run_rows<1, IntCodes<T, BITS, 1>>(p, a, stream);
  if (rows == 2) return run_rows<2, IntCodes<T, BITS, 2>>(p, a, stream);
  return "rows: expected 0, 1 or 2";
}

}  // namespace w4a16_decode_impl
}  // namespace qlinear_cutlass
