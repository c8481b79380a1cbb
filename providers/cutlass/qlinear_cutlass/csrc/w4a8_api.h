// The plain-C++ interface between the W4A8 torch binding and the CUTLASS int4 x FP8 translation units:
// raw pointers and sizes only (the CUTLASS TUs never parse torch headers).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace qlinear_cutlass {

// Tile configurations per M bucket (ids shared with configs.py W4A8_*).
enum W4A8Config : int { kW4A8Small = 0, kW4A8Mid = 1, kW4A8Large = 2 };
enum W4A8Out : int { kW4A8OutBF16 = 0, kW4A8OutF16 = 1 };

struct W4A8Args {
  int m, n, k;
  int group;                 // scale group along K (a multiple of 128, or K)
  int64_t lda, ldd;          // row strides of xq [M, K] and out [M, N] (elements)
  void const* xq;            // [M, K] float8_e4m3fn activation codes
  float const* token_scale;  // [M] per-token activation scales
  void const* w;             // int4 weight [N, K], lookup-encoded, in the re-laid order (w4a8_layout.py)
  void const* scale_lut;     // [K/group, N] x 8 E4M3 bytes: -8 s ... -1 s per (group, channel)
  float const* chan_scale;   // [N] per-channel weight scales
  void const* bias;          // [N] in the output dtype, or null
  void* out;                 // [M, N] bf16 / fp16
  int config;                // W4A8Config
  int out_type;              // W4A8Out
  int device, sm_count;
  void* workspace;
  size_t workspace_bytes;
};

// Returns nullptr on success, else a static error message.
char const* w4a8_mm(W4A8Args const& p, cudaStream_t stream);
size_t w4a8_mm_workspace(W4A8Args const& p);

// Per (output type, tile) entry points, one per w4a8_<out>_<tile>.cu.
template <class Out, int Config>
char const* w4a8_run(W4A8Args const& p, cudaStream_t stream);
template <class Out, int Config>
size_t w4a8_workspace(W4A8Args const& p);

}  // namespace qlinear_cutlass
