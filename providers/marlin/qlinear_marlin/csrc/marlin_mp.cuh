// W4A16 / W8A16 mixed-precision GEMM for small and medium M (qlinear's Marlin-class kernel).
//
// Pure CUDA: no torch headers, so `nvcc -std=c++17 -arch=sm_90a -c mp_kernels.cu` checks it alone.
//
// Layout (made once on the host by qlinear_marlin/repack.py; that file has the exact formula):
//   w   int32 [N/64][Kp/16][32 lanes][BITS words]   one 16(k) x 64(n) tile = 128*BITS contiguous bytes;
//        lane L = 4g + t holds every code of its mma.m16n8k16 B fragments (rows 2t, 2t+1, 2t+8, 2t+9
//        of columns 8*n8 + g): 4-bit: word j = n8 tiles 2j, 2j+1 (8 nibbles); 8-bit: word j = n8 tile j
//        (4 bytes). The two rows of one B register sit 16 bits apart in the word, so a mask puts them
//        in the two halves of a 32-bit register. A warp loads a whole tile as 16-byte vectors.
//   s   T [G][N/64][8 (g)][8 (n8)]   scale of column 8*n8 + g: the 16 bytes lane group g needs.
//   zm  T [G][N/64][8][8]            zero-point offset (see Dequant below); zero-point types only.
//   x   T [M][Kp] row-major (already gathered along K for act-order).
// Dequant: (code | MAGIC) is exactly MAGIC + code as a 16-bit float (fp16: 1024, exact to 1023;
// bf16: 128, exact to 127), so subtracting zm = MAGIC + zero gives the exact integer code - zero, and
// one 16-bit multiply by the scale follows. bf16 cannot hold 128 + an 8-bit code exactly, so 8-bit bf16
// takes the code as two exact nibble sums (dequant_pair), and its zm is the zero point itself.
// Work split: a block owns one 64-column tile, 16*MT rows and a contiguous K slice; its 8 warps split
// the slice further, each running its own cp.async pipeline (no block barriers in the main loop),
// then reduce through shared memory in a fixed order (no atomics: float atomics on shared memory are
// compare-and-swap loops on sm_90, which made the reduction the kernel's bottleneck from 16 rows on).
// With several K slices (split-K, for small M) each block stores its fp32 partial tile in its own
// workspace plane; the last block of a tile (atomic counter) adds the planes in slice order, writes
// the output and re-zeroes the counter for the next call. Results are deterministic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "mp_params.h"

namespace qlinear_marlin {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTileN = 64;
constexpr int kTileK = 16;

// Pipeline depth per warp: deeper for one m16 tile (small M is latency/bandwidth bound and cheap in
// shared memory), 4 otherwise.
template <int MT>
__host__ __device__ constexpr int stages() {
  return MT == 1 ? 6 : 4;
}

template <typename T>
struct Traits;

template <>
struct Traits<__half> {
  using T2 = __half2;
  static constexpr bool kIsBf16 = false;
  static constexpr uint32_t kMagic = 0x64006400u;  // 1024.0 in each half
  static constexpr float kMagicF = 1024.f;
  static __device__ __forceinline__ void mma(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half2 from_floats(float lo, float hi) { return __floats2half2_rn(lo, hi); }
};

template <>
struct Traits<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr bool kIsBf16 = true;
  static constexpr uint32_t kMagic = 0x43004300u;  // 128.0 in each bfloat16
  static constexpr float kMagicF = 128.f;
  static __device__ __forceinline__ void mma(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat162 from_floats(float lo, float hi) {
    return __floats2bfloat162_rn(lo, hi);
  }
};

// ---- async copies -----------------------------------------------------------------------------------
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  // "memory": shared-memory reads after the wait must not be hoisted above it
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <typename T>
__device__ __forceinline__ uint32_t as_u32(typename Traits<T>::T2 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}
template <typename T>
__device__ __forceinline__ typename Traits<T>::T2 as_t2(uint32_t v) {
  return *reinterpret_cast<typename Traits<T>::T2*>(&v);
}
template <typename T>
__device__ __forceinline__ typename Traits<T>::T2 bcast(T v) {
  typename Traits<T>::T2 r;
  r.x = v;
  r.y = v;
  return r;
}

// (q & MASK) | BITS_ in one three-input op: written as asm so the two constants do not become an AND
// and an OR (an instruction holds one immediate; ptxas keeps the other in a register).
template <uint32_t MASK, uint32_t BITS_>
__device__ __forceinline__ uint32_t and_or(uint32_t q) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(q), "n"(MASK), "n"(BITS_));
  return r;
}

// Two float codes (FP8 E4M3 when BITS == 8, FP4 E2M1 when 4) at bits [0, BITS) and [16, 16 + BITS)
// -> a T2 holding value * 2^-kFpBias<T, BITS> each, exactly: the sign goes to bit 15 and
// exponent|mantissa to the low end of T's exponent field and the top of its mantissa (subnormals
// included: both 16-bit types keep them). No arithmetic: the power of two is folded into the group
// scales at load time (qlinear_marlin/fp.py code_scales), so one multiply by the scale makes the weight.
template <typename T, int BITS>
__device__ __forceinline__ uint32_t fp_raw(uint32_t bits16) {
  constexpr bool kBf16 = Traits<T>::kIsBf16;
  if constexpr (BITS == 8) {  // E4M3: 7 exponent|mantissa bits under the sign; mantissa 3 bits
    return ((bits16 & 0x00800080u) << 8) | ((bits16 & 0x007F007Fu) << (kBf16 ? 4 : 7));
  } else {  // E2M1: 3 exponent|mantissa bits under the sign; mantissa 1 bit
    return ((bits16 & 0x00080008u) << 12) | ((bits16 & 0x00070007u) << (kBf16 ? 6 : 9));
  }
}
// the exponent bias difference: T's (15 / 127) minus the code's (E4M3 7, E2M1 1)
template <typename T, int BITS>
constexpr int kFpBias = (Traits<T>::kIsBf16 ? 127 : 15) - (BITS == 8 ? 7 : 1);

// One B register: codes at bits [0, BITS) and [16, 16 + BITS) of `bits16` (already shifted into
// place), minus the zero, times the scale. `zm` is MAGIC + zero (or the zero itself for 8-bit bf16).
// FP: float codes, no zero; value times scale rounded once to T (fp_raw).
template <typename T, int BITS, bool HAS_ZP, bool FP>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t bits16, T zm, T scale) {
  using Tr = Traits<T>;
  using T2 = typename Tr::T2;
  constexpr uint32_t kMask = BITS == 4 ? 0x000F000Fu : 0x00FF00FFu;
  if constexpr (FP) {
    // the scale holds 2^kFpBias (fp.py code_scales): one rounding of the exact product, as in fp32
    return as_u32<T>(__hmul2(as_t2<T>(fp_raw<T, BITS>(bits16)), bcast<T>(scale)));
  } else if constexpr (BITS == 8 && Tr::kIsBf16) {
    // bf16 cannot hold 128 + an 8-bit code, but it holds each nibble exactly: 128 + lo (the low
    // nibble under 128's exponent) and 256 + 16 hi (the high nibble at mantissa bits 3..6 under 256's).
    // Every sum below is an integer of at most 8 significant bits, so exact: code - zero, then one
    // rounding by the scale multiply (the same result as (code - zero) * scale in fp32, rounded).
    const T2 lo = as_t2<T>(and_or<0x000F000Fu, 0x43004300u>(bits16));       // 128 + lo
    const T2 hi = as_t2<T>(and_or<0x00780078u, 0x43804380u>(bits16 >> 1));  // 256 + 16 hi
    T2 d;
    if constexpr (HAS_ZP) {  // (16 hi - 128) + (128 + lo - zero); zm is the zero itself
      d = __hadd2(__hadd2(hi, as_t2<T>(0xC3C0C3C0u)), __hsub2(lo, bcast<T>(zm)));  // 0xC3C0: -384
    } else {  // (16 hi - 256) + (128 + lo) = code - 128
      d = __hadd2(__hadd2(hi, as_t2<T>(0xC400C400u)), lo);  // 0xC400: -512
    }
    return as_u32<T>(__hmul2(d, bcast<T>(scale)));
  } else {
    const T2 raw = as_t2<T>((bits16 & kMask) | Tr::kMagic);
    T2 off;
    if constexpr (HAS_ZP) {
      off = bcast<T>(zm);
    } else {
      // MAGIC + the type's bias (uint4b8: 8, uint8b128: 128): exact in both types (bf16 4-bit only)
      off = as_t2<T>(Tr::kMagic + (BITS == 4 ? 0x00080008u : 0x00800080u));
    }
    return as_u32<T>(__hmul2(__hsub2(raw, off), bcast<T>(scale)));
  }
}

// Per-warp stage in shared memory: weights (BITS/4 16-byte chunks per lane), scales and zero offsets
// (8 chunks, one per lane group g), activations (MT m16 tiles of 16 rows x 16 halves; the two 16B
// halves of a row are swapped when (row >> 2) & 1 so the fragment loads below hit 32 distinct banks).
template <int MT, int BITS>
struct StageLayout {
  static constexpr int kW = 128 * BITS;
  static constexpr int kS = 128;
  static constexpr int kZ = 128;
  static constexpr int kA = MT * 512;
  static constexpr int kBytes = kW + kS + kZ + kA;
};

// The block's fp32 sums of its output tile ([rows][64] in shared memory `red`) -> the output. One
// part (nparts == 1): scaled, biased and stored. Several (K slices, or stream-K segments): this
// part's partial tile goes to workspace plane `part`; the last part to arrive (counter `cidx`) adds
// the planes in part order, writes the tile and re-zeroes the counter for the next call. Called by
// every thread of the block.
template <typename T>
__device__ __forceinline__ void finish_tile(const Params& p, const float* red, int rows, int row0, int ntile,
                                            int part, int nparts, int cidx, int nthreads) {
  using Tr = Traits<T>;
  const T* bias = static_cast<const T*>(p.bias);
  const float* cs = p.col_scale;
  T* out = static_cast<T*>(p.out);
  const int col0 = ntile * kTileN;
  if (nparts == 1) {
    for (int i = threadIdx.x; i < rows * kTileN; i += nthreads) {
      const int r = i / kTileN, c = i % kTileN;
      float v = red[i];
      if (cs) v *= cs[col0 + c];
      if (bias) v += Tr::to_float(bias[col0 + c]);
      out[(size_t)(row0 + r) * p.N + col0 + c] = Tr::from_float(v);
    }
    return;
  }
  const size_t plane = (size_t)p.M * p.N;
  for (int i = threadIdx.x; i < rows * kTileN; i += nthreads) {
    const int r = i / kTileN, c = i % kTileN;
    __stcg(&p.ws[part * plane + (size_t)(row0 + r) * p.N + col0 + c], red[i]);
  }
  __threadfence();
  __syncthreads();
  __shared__ int is_last;
  if (threadIdx.x == 0) {
    const int prev = atomicAdd(&p.counters[cidx], 1);
    is_last = (prev == nparts - 1);
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int i = threadIdx.x; i < rows * kTileN; i += nthreads) {
    const int r = i / kTileN, c = i % kTileN;
    const float* wp = &p.ws[(size_t)(row0 + r) * p.N + col0 + c];
    float v = 0.f;
    for (int sl = 0; sl < nparts; ++sl) v += __ldcg(wp + sl * plane);
    if (cs) v *= cs[col0 + c];
    if (bias) v += Tr::to_float(bias[col0 + c]);
    out[(size_t)(row0 + r) * p.N + col0 + c] = Tr::from_float(v);
  }
  if (threadIdx.x == 0) p.counters[cidx] = 0;
}

template <typename T, int MT, int BITS, bool HAS_ZP, bool FP>
__global__ void __launch_bounds__(kThreads) mp_gemm_kernel(const Params p) {
  using Tr = Traits<T>;
  using SL = StageLayout<MT, BITS>;
  constexpr int kStages = stages<MT>();
  constexpr int kChunks = BITS / 4;  // 16-byte weight chunks per lane per tile
  extern __shared__ __align__(16) unsigned char smem[];

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;
  const int t = lane % 4;

  const int ntile = blockIdx.x;
  const int mblk = blockIdx.y;
  const int split = blockIdx.z;
  const int n_tiles = p.N / kTileN;
  const int tiles_k = p.Kp / kTileK;
  const int row0 = mblk * 16 * MT;

  // this warp's contiguous run of k tiles inside the block's slice
  const int s_lo = split * p.slice_tiles;
  const int s_hi = min(s_lo + p.slice_tiles, tiles_k);
  const int per_warp = (s_hi - s_lo + kWarps - 1) / kWarps;
  const int k_lo = min(s_lo + warp * per_warp, s_hi);
  const int k_hi = min(k_lo + per_warp, s_hi);
  const int n_iter = k_hi - k_lo;

  unsigned char* wsmem = smem + warp * (kStages * SL::kBytes);
  const T* x = static_cast<const T*>(p.x);
  const int4* w4 = static_cast<const int4*>(p.w);
  const int4* s4 = static_cast<const int4*>(p.s);
  const int4* z4 = static_cast<const int4*>(p.zm);

  auto issue = [&](int it, int stage) {
    if (it < n_iter) {
      const int kt = k_lo + it;
      unsigned char* st = wsmem + stage * SL::kBytes;
      const int4* wsrc = w4 + ((size_t)ntile * tiles_k + kt) * 32 * kChunks + lane * kChunks;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) cp_async16(st + (lane * kChunks + c) * 16, wsrc + c, true);
      const int grp = p.tile_group ? p.tile_group[kt] : (kt * kTileK) / p.group_k;
      if (t == 0) {
        const size_t sidx = ((size_t)grp * n_tiles + ntile) * 8 + g;
        cp_async16(st + SL::kW + g * 16, s4 + sidx, true);
        if (HAS_ZP) cp_async16(st + SL::kW + SL::kS + g * 16, z4 + sidx, true);
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int r = lane / 2, c = lane % 2;
        const int row = row0 + mt * 16 + r;
        const bool ok = row < p.M;
        const T* src = x + (size_t)(ok ? row : 0) * p.Kp + kt * kTileK + c * 8;
        unsigned char* dst = st + SL::kW + SL::kS + SL::kZ + mt * 512 + r * 32 + ((c ^ ((r >> 2) & 1)) * 16);
        cp_async16(dst, src, ok);
      }
    }
    cp_async_commit();  // always commit (maybe empty) so the group count stays uniform
  };

  float acc[MT][8][4];
#pragma unroll
  for (int a = 0; a < MT; ++a)
#pragma unroll
    for (int b = 0; b < 8; ++b)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[a][b][c] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue(s, s);

  for (int it = 0; it < n_iter; ++it) {
    cp_async_wait<kStages - 2>();
    __syncwarp();  // other lanes' copies (scales, activations) are visible; the old stage is free
    issue(it + kStages - 1, (it + kStages - 1) % kStages);

    const unsigned char* st = wsmem + (it % kStages) * SL::kBytes;
    uint32_t words[4 * kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int4 v = *reinterpret_cast<const int4*>(st + (lane * kChunks + c) * 16);
      words[4 * c + 0] = (uint32_t)v.x;
      words[4 * c + 1] = (uint32_t)v.y;
      words[4 * c + 2] = (uint32_t)v.z;
      words[4 * c + 3] = (uint32_t)v.w;
    }
    const T* sv = reinterpret_cast<const T*>(st + SL::kW + g * 16);
    const T* zv = reinterpret_cast<const T*>(st + SL::kW + SL::kS + g * 16);
    const T* av = reinterpret_cast<const T*>(st + SL::kW + SL::kS + SL::kZ);

    // A fragments of every m16 tile (rows g, g+8; columns 2t.. and 2t+8..)
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const T* base = av + mt * 256;
      const int r0 = g, r1 = g + 8;
      const int sw0 = (r0 >> 2) & 1, sw1 = (r1 >> 2) & 1;
      a[mt][0] = *reinterpret_cast<const uint32_t*>(base + r0 * 16 + (0 ^ sw0) * 8 + 2 * t);
      a[mt][1] = *reinterpret_cast<const uint32_t*>(base + r1 * 16 + (0 ^ sw1) * 8 + 2 * t);
      a[mt][2] = *reinterpret_cast<const uint32_t*>(base + r0 * 16 + (1 ^ sw0) * 8 + 2 * t);
      a[mt][3] = *reinterpret_cast<const uint32_t*>(base + r1 * 16 + (1 ^ sw1) * 8 + 2 * t);
    }

#pragma unroll
    for (int n8 = 0; n8 < 8; ++n8) {
      uint32_t b[2];
      const T zm = HAS_ZP ? zv[n8] : T();
      if constexpr (BITS == 4) {
        // word n8/2; registers 0,1 of n8 tile 2j sit at nibbles (0,4), (1,5); of tile 2j+1 at (2,6), (3,7)
        const uint32_t q = words[n8 / 2];
        const int sh = 8 * (n8 % 2);
        b[0] = dequant_pair<T, 4, HAS_ZP, FP>(q >> sh, zm, sv[n8]);
        b[1] = dequant_pair<T, 4, HAS_ZP, FP>(q >> (sh + 4), zm, sv[n8]);
      } else {
        // word n8: register 0 at bytes (0,2), register 1 at bytes (1,3)
        const uint32_t q = words[n8];
        b[0] = dequant_pair<T, 8, HAS_ZP, FP>(q, zm, sv[n8]);
        b[1] = dequant_pair<T, 8, HAS_ZP, FP>(q >> 8, zm, sv[n8]);
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) Tr::mma(acc[mt][n8], a[mt], b);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with its pipeline: reuse shared memory for the reduction

  // Cross-warp reduction in three rounds: the upper half of the warps still holding partials stores
  // them (lane-minor, so a warp's stores hit 32 banks), the lower half adds them; warp 0 ends with
  // the block's sums and writes them as a [16*MT][64] tile for the epilogue.
  constexpr int kFrag = MT * 8 * 4;  // accumulator floats per lane
  float* part = reinterpret_cast<float*>(smem);  // [kWarps / 2][kFrag][32]
#pragma unroll
  for (int half = kWarps / 2; half >= 1; half /= 2) {
    if (warp >= half && warp < 2 * half) {
      float* dst = part + (warp - half) * kFrag * 32 + lane;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n8 = 0; n8 < 8; ++n8)
#pragma unroll
          for (int i = 0; i < 4; ++i) dst[((mt * 8 + n8) * 4 + i) * 32] = acc[mt][n8][i];
    }
    __syncthreads();
    if (warp < half) {
      const float* src = part + warp * kFrag * 32 + lane;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n8 = 0; n8 < 8; ++n8)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[mt][n8][i] += src[((mt * 8 + n8) * 4 + i) * 32];
    }
    __syncthreads();
  }
  float* red = reinterpret_cast<float*>(smem);  // [16*MT][64], over `part` (last read before the barrier)
  if (warp == 0) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n8 = 0; n8 < 8; ++n8)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          red[(mt * 16 + g + 8 * (i / 2)) * kTileN + n8 * 8 + 2 * t + (i % 2)] = acc[mt][n8][i];
  }
  __syncthreads();

  finish_tile<T>(p, red, min(16 * MT, p.M - row0), row0, ntile, split, p.splits, mblk * n_tiles + ntile, kThreads);
}

template <int MT, int BITS>
constexpr int smem_bytes() {
  constexpr int pipe = kWarps * stages<MT>() * StageLayout<MT, BITS>::kBytes;
  constexpr int red = (kWarps / 2) * MT * 8 * 4 * 32 * 4;  // the reduction's partials (> the [16*MT][64] tile)
  return pipe > red ? pipe : red;
}

// Per-device facts about one instantiation, looked up once: the shared-memory attribute is set and
// the number of blocks one SM holds is asked of the occupancy calculator.
struct LaunchInfo {
  bool ready = false;
  int resident = 1;  // blocks resident on the whole GPU at once
};

// Split K so a small-M grid fills the GPU in one wave: floor(resident / output tiles) slices, keeping
// >= 16 k tiles (2 per warp) per slice; then re-balance so no slice is empty. Needs ws/counters.
inline void choose_splits(Params& p, int m_blocks, int resident) {
  const int n_tiles = p.N / kTileN;
  const int tiles_k = p.Kp / kTileK;
  const long long base = (long long)n_tiles * m_blocks;
  int splits = base >= resident ? 1 : (int)(resident / base);
  splits = min(splits, max(1, tiles_k / 16));
  splits = (int)min((long long)splits, max(1LL, p.ws_floats / ((long long)p.M * p.N)));  // planes that fit in ws
  if (p.ws == nullptr || p.counters == nullptr) splits = 1;
  const int slice = (tiles_k + splits - 1) / splits;
  p.splits = (tiles_k + slice - 1) / slice;
  p.slice_tiles = slice;
}

// Blocks of kernel `Kern` resident on the current device at once, asked of the occupancy calculator
// once per (kernel, device); the dynamic shared-memory attribute is set first when it needs some.
template <auto Kern>
cudaError_t resident_blocks(int threads, int smem, int& resident) {
  constexpr int kMaxDevices = 64;
  static LaunchInfo info[kMaxDevices];
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  LaunchInfo local;
  LaunchInfo& li = dev < kMaxDevices ? info[dev] : local;
  if (!li.ready) {
    if (smem > 0) {
      e = cudaFuncSetAttribute(Kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (e != cudaSuccess) return e;
    }
    int per_sm = 0, sms = 0;
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kern, threads, smem);
    if (e != cudaSuccess) return e;
    e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess) return e;
    if (per_sm < 1) return cudaErrorInvalidConfiguration;
    li.resident = per_sm * sms;
    li.ready = true;
  }
  resident = li.resident;
  return cudaSuccess;
}

template <typename T, int MT, int BITS, bool HAS_ZP, bool FP>
cudaError_t launch_mp_gemm(Params p, int m_blocks, cudaStream_t stream) {
  constexpr int smem = smem_bytes<MT, BITS>();
  constexpr auto kern = mp_gemm_kernel<T, MT, BITS, HAS_ZP, FP>;
  int resident = 1;
  const cudaError_t e = resident_blocks<kern>(kThreads, smem, resident);
  if (e != cudaSuccess) return e;
  choose_splits(p, m_blocks, resident);
  dim3 grid(p.N / kTileN, m_blocks, p.splits);
  kern<<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

// Integer codes, with or without zero points.
template <typename T, int BITS>
cudaError_t launch_int(const Params& p, int mt, bool has_zp, cudaStream_t stream) {
  const int m_blocks = (p.M + 16 * mt - 1) / (16 * mt);
  switch (mt) {
    case 1:
      return has_zp ? launch_mp_gemm<T, 1, BITS, true, false>(p, m_blocks, stream)
                    : launch_mp_gemm<T, 1, BITS, false, false>(p, m_blocks, stream);
    case 2:
      return has_zp ? launch_mp_gemm<T, 2, BITS, true, false>(p, m_blocks, stream)
                    : launch_mp_gemm<T, 2, BITS, false, false>(p, m_blocks, stream);
    case 4:
      return has_zp ? launch_mp_gemm<T, 4, BITS, true, false>(p, m_blocks, stream)
                    : launch_mp_gemm<T, 4, BITS, false, false>(p, m_blocks, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

// Float codes (E2M1 for BITS 4, E4M3 for 8).
template <typename T, int BITS>
cudaError_t launch_fp(const Params& p, int mt, cudaStream_t stream) {
  const int m_blocks = (p.M + 16 * mt - 1) / (16 * mt);
  switch (mt) {
    case 1:
      return launch_mp_gemm<T, 1, BITS, false, true>(p, m_blocks, stream);
    case 2:
      return launch_mp_gemm<T, 2, BITS, false, true>(p, m_blocks, stream);
    case 4:
      return launch_mp_gemm<T, 4, BITS, false, true>(p, m_blocks, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace qlinear_marlin
