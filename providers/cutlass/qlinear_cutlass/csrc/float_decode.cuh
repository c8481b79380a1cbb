// Decode kernel for float weight codes (NVFP4 / MXFP4: E2M1, MXFP8: E4M3), M <= 16, on the float
// GEMM's own weight and scale packets (float_weights.py, mixed_input_float.cuh): one copy serves token
// generation (here) and prefill (the GEMM), as for the integer codes (w4a16_decode.cuh, whose atom
// order, split-K, PDL launch and block finish this kernel shares). The weight and x loads are written
// out here as in the integer kernel rather than shared through a register-stream struct: that struct,
// tried in both kernels, moved the address arithmetic off the uniform datapath and made the int4
// decode kernel 6-11 % slower (H200, docs/results/gpu/lease14/warpstream-ab.json).
//
// What differs from the integer kernel: a float code is not affine in its bits, so there is no
// MAGIC + q sum folded per group. Each A register (two codes of one weight row, adjacent k) is placed
// into 16-bit (float_code_bits.h: value * 2^-bias, a shift and a LOP3) and multiplied by its group's
// stored scale (HMUL2: the same product, rounded once to the activation type, as the GEMM's), and the
// mma sums straight into the fp32 accumulators; the fp32 alpha (2^bias / 2^a of code_scales, and
// NVFP4's 1 / global scale) multiplies the sums once at the end. So a group may be one k block (NVFP4's
// 16) at no extra cost.
//
// Scales: the GEMM's [K/64][N][64/GROUP] packets, one per (64-deep K tile, weight row): a lane loads the
// packets of its two rows (g, g + 8) per atom and K tile (8 bytes for groups of 16, 4 for 32), a chunk's
// worth before its first k block, and the next chunk's packets of a tile into the same registers right
// after the tile's last k block used them (as the weights), so their loads are in flight for half a
// chunk or more.
//
// Plain CUDA (no CUTLASS): included by fp4_decode_<act>.cu and mxfp8_decode_bf16.cu.
#pragma once

#include "float_code_bits.h"
#include "w4a16_decode.cuh"

namespace qlinear_cutlass {
namespace w4a16_decode_impl {

template <typename T>
__device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t b) {
  using T2 = std::conditional_t<std::is_same_v<T, __half>, __half2, __nv_bfloat162>;
  const T2 r = __hmul2(reinterpret_cast<T2 const&>(a), reinterpret_cast<T2 const&>(b));
  return reinterpret_cast<uint32_t const&>(r);
}

// Entry `sub` of a scale packet in both halves of a register (the HMUL2 operand); `sub` is a constant
// once the k-block loop is unrolled, so this is one PRMT.
__device__ __forceinline__ uint32_t scale_pair(uint2 packet, int sub) {  // 4 scales (groups of 16)
  return __byte_perm(sub < 2 ? packet.x : packet.y, 0u, sub % 2 ? 0x3232 : 0x1010);
}
__device__ __forceinline__ uint32_t scale_pair(uint32_t packet, int sub) {  // 2 scales (groups of 32)
  return __byte_perm(packet, 0u, sub % 2 ? 0x3232 : 0x1010);
}

template <typename T, int WARPS, int BITS, int GROUP, int ROWS>
__global__ void __launch_bounds__(WARPS * 32, min_blocks<WARPS, ROWS>()) float_decode_kernel(const Params p) {
  using Tr = Traits<T>;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kCh = chunk_blocks<BITS>();  // 8 k blocks (4-bit) or 4 (8-bit): 1 or 2 K tiles of 64
  constexpr int kTiles = kCh / 4;
  constexpr int kSub = 64 / GROUP;           // group scales a packet
  static_assert(kSub == 2 || kSub == 4, "groups of 16 or 32");
  using WT = std::conditional_t<BITS == 4, uint32_t, uint2>;     // a lane's share of one atom
  using ST = std::conditional_t<kSub == 4, uint2, uint32_t>;     // one packet
  allow_dependent_launch();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int ntile = blockIdx.x / p.row_blocks, rblk = blockIdx.x % p.row_blocks;
  const int row0 = 8 * ROWS * rblk, n0 = ntile * kTileN;
  const int chunks = p.k / (16 * kCh);
  const int c_lo = blockIdx.y * p.slice_chunks;
  const int n_chunks = min(c_lo + p.slice_chunks, chunks) - c_lo;
  const size_t kb_words = (size_t)2 * p.n;  // one k block of every atom, in WT
  const WT* wt = reinterpret_cast<const WT*>(p.w) + (size_t)ntile * kAtoms * kAtomWords + lane;
  // packet (K tile T, weight row n) at T * N + n; this lane's rows n0 + 16 j + g (+ 8)
  const ST* packets = static_cast<const ST*>(p.scale) + n0 + g;
  const T* xrow[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int row = row0 + 8 * r + g;  // rows past M read row 0 and are never stored
    xrow[r] = static_cast<const T*>(p.x) + (size_t)(row < p.m ? row : 0) * p.lda + 2 * t;
  }

  float acc[ROWS][kAtoms][4];
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int j = 0; j < kAtoms; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[r][j][i] = 0.f;

  WT w[kCh][kAtoms];
  uint32_t b[kCh][ROWS][2];
  ST s[kTiles][kAtoms][2];
  auto load_w = [&](const WT* wc, int i) {
#pragma unroll
    for (int j = 0; j < kAtoms; ++j) w[i][j] = ld_stream(wc + i * kb_words + j * kAtomWords);
  };
  auto load_x = [&](const T* const (&xc)[ROWS], int i) {
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const unsigned int* xp = reinterpret_cast<const unsigned int*>(xc[r] + i * 16);
      b[i][r][0] = __ldg(xp);
      b[i][r][1] = __ldg(xp + 4);  // k + 8
    }
  };
  auto load_s = [&](int tile, int slot) {  // K tile `tile`'s packets of this lane's rows
    const ST* sp = packets + (size_t)tile * p.n;
#pragma unroll
    for (int j = 0; j < kAtoms; ++j) {
      s[slot][j][0] = __ldg(sp + 16 * j);
      s[slot][j][1] = __ldg(sp + 16 * j + 8);
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
#pragma unroll
    for (int tl = 0; tl < kTiles; ++tl) load_s((c_lo + c) * kTiles + tl, tl);
  }
  grid_dependency_wait();
  if (c < n_chunks) {
#pragma unroll
    for (int i = 0; i < kCh; ++i) load_x(xc, i);
  }
  for (; c < n_chunks; c += WARPS) {
    const bool has_next = c + WARPS < n_chunks;
    wc += (size_t)WARPS * kCh * kb_words;
#pragma unroll
    for (int r = 0; r < ROWS; ++r) xc[r] += WARPS * kCh * 16;
#pragma unroll
    for (int i = 0; i < kCh; ++i) {
#pragma unroll
      for (int j = 0; j < kAtoms; ++j) {
        // the group scales of rows g and g + 8 at k block i: entry (i % 4) * kSub / 4 of the tile's packets
        const uint32_t s0 = scale_pair(s[i / 4][j][0], (i % 4) * kSub / 4);
        const uint32_t s1 = scale_pair(s[i / 4][j][1], (i % 4) * kSub / 4);
        uint32_t a[4];
        if constexpr (BITS == 4) {
          // nibbles (0, 4): row g, k 2t, 2t+1; (1, 5): row g+8; (2, 6): row g, k+8; (3, 7): row g+8, k+8
          const uint32_t q = w[i][j];
          a[0] = mul2<T>(e2m1_pair_raw<kBf16>(q), s0);
          a[1] = mul2<T>(e2m1_pair_raw<kBf16>(q >> 4), s1);
          a[2] = mul2<T>(e2m1_pair_raw<kBf16>(q >> 8), s0);
          a[3] = mul2<T>(e2m1_pair_raw<kBf16>(q >> 12), s1);
        } else {
          // word e: bytes (0, 2) row g, k 2t + 8e, 2t + 1 + 8e; bytes (1, 3) row g + 8
          a[0] = mul2<T>(e4m3_pair_raw<kBf16>(w[i][j].x), s0);
          a[1] = mul2<T>(e4m3_pair_raw<kBf16>(w[i][j].x >> 8), s1);
          a[2] = mul2<T>(e4m3_pair_raw<kBf16>(w[i][j].y), s0);
          a[3] = mul2<T>(e4m3_pair_raw<kBf16>(w[i][j].y >> 8), s1);
        }
#pragma unroll
        for (int r = 0; r < ROWS; ++r) Tr::mma(acc[r][j], a, b[i][r]);
      }
      if (has_next) {
        load_w(wc, i);
        load_x(xc, i);
        if (i % 4 == 3) load_s((c_lo + c + WARPS) * kTiles + i / 4, i / 4);  // the tile's packets are spent
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int j = 0; j < kAtoms; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[r][j][i] *= p.alpha;

  block_finish<T, WARPS, ROWS>(p, acc);
}

template <typename T, int BITS, int GROUP, int ROWS>
struct FloatCodes {
  template <int WARPS>
  static constexpr auto probe = float_decode_kernel<T, WARPS, BITS, GROUP, ROWS>;
  template <int WARPS>
  static char const* go(Params const& p, W4A16DecodeArgs const& a, cudaStream_t stream) {
    return launch_kernel<float_decode_kernel<T, WARPS, BITS, GROUP, ROWS>, WARPS, chunk_blocks<BITS>()>(p, a, stream);
  }
};

// The float-code decode of one (activation type, code width, group): rows 0 = the rule (2 for M > 8).
template <typename T, int BITS, int GROUP>
char const* run_float(W4A16DecodeArgs const& a, cudaStream_t stream) {
  W4A16Args const& g = a.gemm;
  if (!float_decode_applies(g.m, g.n, g.k, BITS))
    return BITS == 4 ? "the decode kernel takes M <= 16, N a multiple of 64, K of 128" : "the decode kernel takes M <= 16, N a multiple of 64, K of 64";
  if (g.group != GROUP) return "the decode kernel was built for another group";
  Params p = params_of(a);
  const int rows = a.rows ? a.rows : (g.m > 8 ? 2 : 1);
  if (rows == 1) return run_rows<1, FloatCodes<T, BITS, GROUP, 1>>(p, a, stream);
  if (rows == 2) return run_rows<2, FloatCodes<T, BITS, GROUP, 2>>(p, a, stream);
  return "rows: expected 0, 1 or 2";
}

}  // namespace w4a16_decode_impl
}  // namespace qlinear_cutlass
