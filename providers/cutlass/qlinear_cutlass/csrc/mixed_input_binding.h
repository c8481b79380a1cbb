// The torch-facing checks of the mixed-input GEMMs (w4a16_binding.cpp: int4 codes, w8a16_binding.cpp:
// int8 codes, fp4_binding.cpp / mxfp8_binding.cpp: float codes), shared so all name a bad field the same
// way. Host code with torch.
#pragma once

#include <cmath>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include "torch_binding_util.h"

#include "w4a16_api.h"

namespace qlinear_cutlass {

inline void check_table(torch::Tensor const& t, char const* name, torch::ScalarType dt, int64_t groups, int64_t n) {
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == dt && t.is_contiguous() && t.dim() == 2 && t.size(0) == groups && t.size(1) == n,
              name, ": expected a contiguous CUDA ", c10::toString(dt), " [", groups, ", ", n, "] table, got ", t.scalar_type(),
              " ", t.sizes());
}

// x, out and bias, the checks every mixed-input GEMM shares: the launch arguments they fill (M, N, K,
// strides, pointers, activation type, device). Every bad field is named in the error.
inline W4A16Args activation_args(torch::Tensor out, torch::Tensor x, c10::optional<torch::Tensor> bias) {
  TORCH_CHECK(x.is_cuda() && out.is_cuda(), "x, out: expected CUDA tensors");
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf, "x.dtype: expected bfloat16 or float16, got ",
              x.scalar_type());
  TORCH_CHECK(out.scalar_type() == x.scalar_type(), "out.dtype: expected ", x.scalar_type(), " like x, got ", out.scalar_type());
  TORCH_CHECK(x.dim() == 2 && out.dim() == 2, "x, out: expected 2-D tensors");
  const int64_t m = x.size(0), k = x.size(1), n = out.size(1);
  TORCH_CHECK(out.size(0) == m, "out.shape: expected [", m, ", N], got ", out.sizes());
  TORCH_CHECK(x.stride(1) == 1 && out.stride(1) == 1, "x, out: the last dimension must be contiguous");
  TORCH_CHECK(x.stride(0) % 8 == 0 && out.stride(0) % 8 == 0, "x, out: row strides must be 16-byte aligned");
  TORCH_CHECK(n % 16 == 0 && k % 64 == 0, "N must be a multiple of 16 and K of 64, got N=", n, " K=", k);
  if (bias) {
    TORCH_CHECK(bias->is_cuda() && bias->scalar_type() == x.scalar_type() && bias->is_contiguous() && bias->numel() == n,
                "bias: expected a contiguous CUDA ", x.scalar_type(), " vector of N=", n, " elements");
  }
  W4A16Args p{};
  p.m = int(m), p.n = int(n), p.k = int(k);
  p.lda = x.stride(0), p.ldd = out.stride(0);
  p.x = x.data_ptr(), p.bias = bias ? bias->data_ptr() : nullptr, p.out = out.data_ptr();
  p.act = x.scalar_type() == torch::kBFloat16 ? kActBF16 : kActF16;
  p.device = x.get_device();
  p.sm_count = sm_count(p.device);
  p.alpha = 1.f;
  return p;
}

inline void check_weight_bytes(torch::Tensor const& w, int64_t bytes, char const* what) {
  TORCH_CHECK(w.is_cuda() && w.scalar_type() == torch::kUInt8 && w.is_contiguous() && w.numel() == bytes, "w: expected contiguous CUDA uint8 with ",
              what, " = ", bytes, " bytes, got ", w.scalar_type(), " ", w.numel());
}

// The checked launch arguments of out [M, N] = x [M, K] @ dequant(w)^T + bias, dequant(w)[n, k] =
// code(w)[n, k] * scale[k/g, n] (+ zero[k/g, n]), codes of `bits` bits (4 or 8) in the re-laid order
// (qlinear_cutlass.w4a16_layout), N*K*bits/8 bytes.
inline W4A16Args mixed_input_args(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                                  c10::optional<torch::Tensor> zero, c10::optional<torch::Tensor> bias, int64_t group,
                                  int64_t config, int bits) {
  W4A16Args p = activation_args(out, x, bias);
  const int64_t n = p.n, k = p.k;
  TORCH_CHECK(group > 0 && k % group == 0 && (group % 64 == 0 || group == k), "group: expected a multiple of 64 dividing K, or K; got ",
              group, " for K=", k);
  check_weight_bytes(w, n * k * bits / 8, bits == 4 ? "N*K/2" : "N*K");
  check_table(scale, "scale", x.scalar_type(), k / group, n);
  if (zero) check_table(*zero, "zero", x.scalar_type(), k / group, n);
  p.group = int(group);
  p.w = w.data_ptr(), p.scale = scale.data_ptr(), p.zero = zero ? zero->data_ptr() : nullptr;
  p.config = int(config);
  return p;
}

// Launch checked arguments on torch's current stream with a workspace from its caching allocator.
// `mm` / `workspace` are the extension's dispatchers (w4a16_mm, w8a16_mm or fp4_mm and their workspace sizes).
inline void launch_mixed_input(W4A16Args p, torch::Tensor const& x, char const* (*mm)(W4A16Args const&, cudaStream_t),
                               size_t (*workspace)(W4A16Args const&), char const* name) {
  if (p.m == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  torch::Tensor ws = attach_workspace(p, workspace(p), x);
  char const* err = mm(p, c10::cuda::getCurrentCUDAStream(p.device).stream());
  TORCH_CHECK(err == nullptr, "cutlass ", name, ": ", err ? err : "");
}

// Float codes (mixed_input_float.cuh: fp4_binding.cpp, mxfp8_binding.cpp): w uint8 [N*K*bits/8] in the
// order of the integer codes of that width (qlinear_cutlass.w4a16_layout); scale [K/64, N, 64/group]
// packets in x's dtype (sub_scale_table); out = alpha * (x @ dequant(w)^T) + bias. `takes16`: the
// extension holds group 16 (group 32 needs bf16: E8M0 scales need its range).
inline W4A16Args float_codes_args(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                                  c10::optional<torch::Tensor> bias, int64_t group, int64_t config, double alpha, int bits,
                                  bool takes16, char const* name) {
  W4A16Args p = activation_args(out, x, bias);
  const int64_t n = p.n, k = p.k;
  TORCH_CHECK((group == 16 && takes16) || (group == 32 && x.scalar_type() == torch::kBFloat16), name,
              ": group: expected ", takes16 ? "16, or 32 with bfloat16 activations" : "32 with bfloat16 activations",
              ", got ", group, " with ", x.scalar_type());
  check_weight_bytes(w, n * k * bits / 8, bits == 4 ? "N*K/2" : "N*K");
  const int64_t per = 64 / group;
  TORCH_CHECK(scale.is_cuda() && scale.scalar_type() == x.scalar_type() && scale.is_contiguous() && scale.dim() == 3 &&
                  scale.size(0) == k / 64 && scale.size(1) == n && scale.size(2) == per,
              "scale: expected a contiguous CUDA ", x.scalar_type(), " [", k / 64, ", ", n, ", ", per, "] packet table, got ",
              scale.scalar_type(), " ", scale.sizes());
  TORCH_CHECK(std::isfinite(alpha) && alpha != 0.0, "alpha: expected a finite non-zero factor, got ", alpha);
  p.group = int(group), p.w = w.data_ptr(), p.scale = scale.data_ptr(), p.config = int(config), p.alpha = float(alpha);
  return p;
}

inline void float_codes_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                           c10::optional<torch::Tensor> bias, int64_t group, int64_t config, double alpha, int bits,
                           bool takes16, char const* (*mm)(W4A16Args const&, cudaStream_t),
                           size_t (*workspace)(W4A16Args const&), char const* name) {
  launch_mixed_input(float_codes_args(out, x, w, scale, bias, group, config, alpha, bits, takes16, name), x, mm, workspace, name);
}

// The GEMM (config: a W4A16Config).
inline void mixed_input_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                           c10::optional<torch::Tensor> zero, c10::optional<torch::Tensor> bias, int64_t group, int64_t config,
                           int bits, char const* (*mm)(W4A16Args const&, cudaStream_t), size_t (*workspace)(W4A16Args const&),
                           char const* name) {
  launch_mixed_input(mixed_input_args(out, x, w, scale, zero, bias, group, config, bits), x, mm, workspace, name);
}

// The decode kernels (M <= 16, w4a16_decode.cuh, float_decode.cuh) on the GEMM's weight, `g` its checked
// arguments: ws fp32 split-K planes, counters int32 zeroed (left zeroed), splits 0 = one wave's worth,
// warps 0 = the launcher's rule (4 / 8), rows 0 = the rule (1 / 2 eight-row blocks of x a block).
// `decode` is the extension's entry (w4a16_ / w8a16_ / fp4_ / mxfp8_decode), `applies` its shapes (K a
// multiple of chunk_k; `whole_groups`: the integer kernels' groups of whole 64-k blocks too).
inline void launch_decode(W4A16Args const& g, bool applies, int chunk_k, bool whole_groups, torch::Tensor const& x,
                          torch::Tensor ws, torch::Tensor counters, int64_t splits, int64_t warps, bool pdl, int64_t rows,
                          bool cluster, char const* (*decode)(W4A16DecodeArgs const&, cudaStream_t), char const* name) {
  TORCH_CHECK(applies, name, ": takes 1 <= M <= 16, N a multiple of 64, K of ", chunk_k,
              whole_groups ? " and groups of whole 64-k blocks" : "", "; got M=", g.m, " N=", g.n, " K=", g.k, " group=", g.group);
  TORCH_CHECK(ws.is_cuda() && ws.scalar_type() == torch::kFloat && ws.is_contiguous() && ws.get_device() == g.device,
              "ws: expected a contiguous float32 tensor on x's device");
  TORCH_CHECK(counters.is_cuda() && counters.scalar_type() == torch::kInt && counters.is_contiguous() &&
                  counters.get_device() == g.device,
              "counters: expected a contiguous int32 tensor on x's device");
  TORCH_CHECK(splits >= 0 && (warps == 0 || warps == 4 || warps == 8) && rows >= 0 && rows <= 2,
              "splits: expected >= 0; warps: 0, 4 or 8; rows: 0, 1 or 2");
  W4A16DecodeArgs a{};
  a.gemm = g;
  a.ws = ws.data_ptr<float>(), a.ws_floats = ws.numel();
  a.counters = counters.data_ptr<int>(), a.counters_len = counters.numel();
  a.splits = int(splits), a.warps = int(warps), a.pdl = pdl ? 1 : 0, a.rows = int(rows), a.no_cluster = cluster ? 0 : 1;
  const c10::cuda::CUDAGuard guard(x.device());
  char const* err = decode(a, c10::cuda::getCurrentCUDAStream(g.device).stream());
  TORCH_CHECK(err == nullptr, "cutlass ", name, ": ", err ? err : "");
}

// Integer codes (w4a16_decode.cuh).
inline void mixed_input_decode(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                               c10::optional<torch::Tensor> zero, c10::optional<torch::Tensor> bias, torch::Tensor ws,
                               torch::Tensor counters, int64_t group, int64_t splits, int64_t warps, bool pdl, int64_t rows,
                               bool cluster, int bits, char const* (*decode)(W4A16DecodeArgs const&, cudaStream_t), char const* name) {
  const W4A16Args g = mixed_input_args(out, x, w, scale, zero, bias, group, 0, bits);
  const bool applies = bits == 4 ? w4a16_decode_applies(g.m, g.n, g.k, g.group) : w8a16_decode_applies(g.m, g.n, g.k, g.group);
  launch_decode(g, applies, bits == 4 ? 128 : 64, true, x, ws, counters, splits, warps, pdl, rows, cluster, decode, name);
}

// Float codes (float_decode.cuh), the arguments of float_codes_mm.
inline void float_codes_decode(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                               c10::optional<torch::Tensor> bias, torch::Tensor ws, torch::Tensor counters, int64_t group,
                               int64_t splits, int64_t warps, bool pdl, int64_t rows, bool cluster, double alpha, int bits, bool takes16,
                               char const* (*decode)(W4A16DecodeArgs const&, cudaStream_t), char const* name) {
  const W4A16Args g = float_codes_args(out, x, w, scale, bias, group, 0, alpha, bits, takes16, name);
  launch_decode(g, float_decode_applies(g.m, g.n, g.k, bits), bits == 4 ? 128 : 64, false, x, ws, counters, splits, warps, pdl,
                rows, cluster, decode, name);
}

// Act-order: out [M, K] = x [:, perm], PDL-launched ahead of the decode kernel or the GEMM (both
// extensions' w4a16_gather; `staged` picks the row-staged kernel, configs.W4A16_GATHER_STAGED_MIN_M).
// perm holds uint16 indices in an int16 tensor (w4a16_layout.gather_index). Checked by the caller
// (qlinear_cutlass.w4a16); only what would read or write out of bounds is checked here.
inline void mixed_input_gather(torch::Tensor out, torch::Tensor x, torch::Tensor perm, bool pdl, bool staged) {
  TORCH_CHECK(x.is_cuda() && out.is_cuda() && perm.is_cuda() && perm.scalar_type() == torch::kShort && perm.is_contiguous() &&
                  out.is_contiguous() && x.dim() == 2 && x.stride(1) == 1 && out.sizes() == x.sizes() &&
                  perm.numel() == x.size(1) && x.size(1) <= 65536 && out.element_size() == 2 && x.scalar_type() == out.scalar_type(),
              "w4a16_gather: expected CUDA x [M, K <= 65536] (16-bit, unit column stride), out [M, K] contiguous, perm int16 [K]");
  W4A16GatherArgs a{out.data_ptr(), x.data_ptr(), reinterpret_cast<uint16_t const*>(perm.data_ptr<int16_t>()), int(x.size(0)),
                    int(x.size(1)), x.stride(0), pdl ? 1 : 0, staged ? 1 : 0};
  if (a.m == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  char const* err = w4a16_gather(a, c10::cuda::getCurrentCUDAStream(x.get_device()).stream());
  TORCH_CHECK(err == nullptr, "cutlass w4a16_gather: ", err ? err : "");
}

}  // namespace qlinear_cutlass
