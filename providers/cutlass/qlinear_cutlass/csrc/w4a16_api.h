// The plain-C++ interface between the mixed-input torch bindings (W4A16, W8A16) and the CUTLASS
// translation units: raw pointers and sizes only (the CUTLASS TUs never parse torch headers).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace qlinear_cutlass {

// Tile configurations (ids shared with configs.py W4A16_TILES): token rows per tile, and whether the
// tile is 256 weight rows wide (for layers with N >= configs.W4A16_WIDE_N) instead of 128.
enum W4A16Config : int { kW4M16 = 0, kW4M16Wide = 1, kW4M64 = 2, kW4M64Wide = 3, kW4M128 = 4, kW4M128Wide = 5, kW4M256 = 6 };
// X-macro over every config, so the dispatchers and instantiation lists cannot miss one.
#define QLC_W4A16_CONFIGS(X) X(kW4M16) X(kW4M16Wide) X(kW4M64) X(kW4M64Wide) X(kW4M128) X(kW4M128Wide) X(kW4M256)
enum W4A16Act : int { kActBF16 = 0, kActF16 = 1 };

struct W4A16Args {
  int m, n, k;
  int group;                // scale group along K (a multiple of 64, or K; float codes: 16 or 32)
  int64_t lda, ldd;         // row strides of x [M, K] and out [M, N] (elements)
  void const* x;            // [M, K] bf16 / fp16
  void const* w;            // int4 (W4A16) or int8 (W8A16) weight [N, K] in the re-laid order (w4a16_layout.py)
  void const* scale;        // [K/group, N] in the activation dtype (N contiguous)
  void const* zero;         // [K/group, N] additive zero term in the activation dtype, or null (symmetric)
  void const* bias;         // [N] in the activation dtype, or null
  void* out;                // [M, N] in the activation dtype
  int config;               // W4A16Config
  int act;                  // W4A16Act
  int device, sm_count;
  void* workspace;
  size_t workspace_bytes;
  float alpha;              // float codes (fp4_mm, mxfp8_mm): the fp32 factor on the sums; unused by the integer GEMMs
};

// Returns nullptr on success, else a static error message.
char const* w4a16_mm(W4A16Args const& p, cudaStream_t stream);
size_t w4a16_mm_workspace(W4A16Args const& p);
char const* w8a16_mm(W4A16Args const& p, cudaStream_t stream);  // int8 codes, symmetric (zero must be null)
size_t w8a16_mm_workspace(W4A16Args const& p);
// Float codes (mixed_input_float.cuh), scale: [K/64][N][64/group] packets in the activation dtype;
// out = alpha * sums + bias. E2M1 in the int4 order, group 16 (NVFP4) or 32 (MXFP4, bf16 only):
char const* fp4_mm(W4A16Args const& p, cudaStream_t stream);
size_t fp4_mm_workspace(W4A16Args const& p);
// E4M3 in the int8 order, group 32 (MXFP8, bf16 only):
char const* mxfp8_mm(W4A16Args const& p, cudaStream_t stream);
size_t mxfp8_mm_workspace(W4A16Args const& p);

// The decode kernel on the same re-laid weight (w4a16_decode.cuh, float_decode.cuh; plain CUDA), for M <= 16: the
// GEMM's arguments plus its split-K workspace (fp32 [splits][M][N]) and tile counters (int32, zero;
// the kernel leaves them zero), a K-slice count (0: as many as fill one wave), warps per block (0:
// the launcher's rule; 4 or 8), whether to launch as a programmatic dependent (PDL) and rows.
struct W4A16DecodeArgs {
  W4A16Args gemm;  // config and workspace unused
  float* ws;
  int64_t ws_floats;
  int* counters;
  int64_t counters_len;
  int splits, warps, pdl;
  int rows;  // 8-row blocks of x a block takes: 0 = the rule (2 for M > 8), 1 or 2
  int no_cluster;  // 1: K slices always added through ws (0: in thread-block clusters when they are all resident at once)
};

// The shapes the decode kernel takes (the binding checks it; w4a16.py decode_applies mirrors it):
// 64-column tiles and 128-deep chunks, groups of whole 64-k halves.
inline bool w4a16_decode_applies(int m, int n, int k, int group) {
  return m >= 1 && m <= 16 && n % 64 == 0 && k % 128 == 0 && group > 0 && k % group == 0 && group % 64 == 0;
}

// 8-bit codes (W8A16): chunks of 64 k, so K a multiple of 64.
inline bool w8a16_decode_applies(int m, int n, int k, int group) {
  return m >= 1 && m <= 16 && n % 64 == 0 && k % 64 == 0 && group > 0 && k % group == 0 && group % 64 == 0;
}

// Float codes (float_decode.cuh, on the float GEMM's weight and scale packets): chunks of 128 k (E2M1) or
// 64 (E4M3); any group the extension holds (16, 32).
inline bool float_decode_applies(int m, int n, int k, int bits) {
  return m >= 1 && m <= 16 && n % 64 == 0 && k % (bits == 4 ? 128 : 64) == 0;
}

char const* w4a16_decode(W4A16DecodeArgs const& a, cudaStream_t stream);  // this extension's dtype only
char const* w8a16_decode(W4A16DecodeArgs const& a, cudaStream_t stream);  // (the w8a16 extension's)
char const* fp4_decode(W4A16DecodeArgs const& a, cudaStream_t stream);    // (the fp4 extensions')
char const* mxfp8_decode(W4A16DecodeArgs const& a, cudaStream_t stream);  // (the mxfp8 extension's)

// Act-order ahead of the decode kernel or the GEMM: out [M, K] (contiguous) = x [M, K] (row stride lda)
// with its columns in the weight's sorted order, out[r][i] = x[r][perm[i]] (perm: K <= 65536 uint16);
// PDL-launched like the decode kernel. staged: blocks per row through shared memory (many rows) instead
// of a thread per element (few rows), where x, out and perm allow 16-byte copies.
struct W4A16GatherArgs {
  void* out;
  void const* x;
  uint16_t const* perm;
  int m, k;
  int64_t lda;
  int pdl;
  int staged;
};
char const* w4a16_gather(W4A16GatherArgs const& a, cudaStream_t stream);

// Per (activation type, zero points, tile) entry points, one per w4a16_<mode>_<act>_<tile>.cu.
template <class Act, bool kZero, int Config>
char const* w4a16_run(W4A16Args const& p, cudaStream_t stream);
template <class Act, bool kZero, int Config>
size_t w4a16_workspace(W4A16Args const& p);
// ... and one per (activation type, tile) of the w8a16_<act>_<tile>.cu files.
template <class Act, int Config>
char const* w8a16_run(W4A16Args const& p, cudaStream_t stream);
template <class Act, int Config>
size_t w8a16_workspace(W4A16Args const& p);
// ... and one per (activation type, code width, group, tile) of the fp4_<nv|mx>_<act>_<tile>.cu and
// mxfp8_<act>_<tile>.cu files.
template <class Act, int kBits, int kGroup, int Config>
char const* float_run(W4A16Args const& p, cudaStream_t stream);
template <class Act, int kBits, int kGroup, int Config>
size_t float_workspace(W4A16Args const& p);

}  // namespace qlinear_cutlass
