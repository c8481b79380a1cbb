// The plain-C++ interface between the W4A16 torch binding and the CUTLASS mixed-input translation
// units: raw pointers and sizes only (the CUTLASS TUs never parse torch headers).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace qlinear_cutlass {

// Tile configurations per M bucket (ids shared with configs.py W4A16_*).
enum W4A16Config : int { kW4Small = 0, kW4Mid = 1, kW4Large = 2 };
enum W4A16Act : int { kActBF16 = 0, kActF16 = 1 };

struct W4A16Args {
  int m, n, k;
  int group;                // scale group along K (a multiple of 64, or K)
  int64_t lda, ldd;         // row strides of x [M, K] and out [M, N] (elements)
  void const* x;            // [M, K] bf16 / fp16
  void const* w;            // int4 weight [N, K] in the re-laid order (w4a16_layout.py), N*K/2 bytes
  void const* scale;        // [K/group, N] in the activation dtype (N contiguous)
  void const* zero;         // [K/group, N] additive zero term in the activation dtype, or null (symmetric)
  void const* bias;         // [N] in the activation dtype, or null
  void* out;                // [M, N] in the activation dtype
  int config;               // W4A16Config
  int act;                  // W4A16Act
  int device, sm_count;
  void* workspace;
  size_t workspace_bytes;
};

// Returns nullptr on success, else a static error message.
char const* w4a16_mm(W4A16Args const& p, cudaStream_t stream);
size_t w4a16_mm_workspace(W4A16Args const& p);

// Per (activation type, zero points, tile) entry points, one per w4a16_<mode>_<act>_<tile>.cu.
template <class Act, bool kZero, int Config>
char const* w4a16_run(W4A16Args const& p, cudaStream_t stream);
template <class Act, bool kZero, int Config>
size_t w4a16_workspace(W4A16Args const& p);

}  // namespace qlinear_cutlass
