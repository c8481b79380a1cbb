// The torch-facing checks of the mixed-input GEMMs (w4a16_binding.cpp: int4 codes, w8a16_binding.cpp:
// int8 codes), shared so both name a bad field the same way. Host code with torch.
#pragma once

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

// The checked launch arguments of out [M, N] = x [M, K] @ dequant(w)^T + bias, dequant(w)[n, k] =
// code(w)[n, k] * scale[k/g, n] (+ zero[k/g, n]), codes of `bits` bits (4 or 8) in the re-laid order
// (qlinear_cutlass.w4a16_layout), N*K*bits/8 bytes. Every bad field is named in the error.
inline W4A16Args mixed_input_args(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                                  c10::optional<torch::Tensor> zero, c10::optional<torch::Tensor> bias, int64_t group,
                                  int64_t config, int bits) {
  TORCH_CHECK(x.is_cuda() && w.is_cuda() && out.is_cuda(), "x, w, out: expected CUDA tensors");
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf, "x.dtype: expected bfloat16 or float16, got ",
              x.scalar_type());
  TORCH_CHECK(out.scalar_type() == x.scalar_type(), "out.dtype: expected ", x.scalar_type(), " like x, got ", out.scalar_type());
  TORCH_CHECK(x.dim() == 2 && out.dim() == 2, "x, out: expected 2-D tensors");
  const int64_t m = x.size(0), k = x.size(1), n = out.size(1);
  TORCH_CHECK(out.size(0) == m, "out.shape: expected [", m, ", N], got ", out.sizes());
  TORCH_CHECK(x.stride(1) == 1 && out.stride(1) == 1, "x, out: the last dimension must be contiguous");
  TORCH_CHECK(x.stride(0) % 8 == 0 && out.stride(0) % 8 == 0, "x, out: row strides must be 16-byte aligned");
  TORCH_CHECK(n % 16 == 0 && k % 64 == 0, "N must be a multiple of 16 and K of 64, got N=", n, " K=", k);
  TORCH_CHECK(group > 0 && k % group == 0 && (group % 64 == 0 || group == k), "group: expected a multiple of 64 dividing K, or K; got ",
              group, " for K=", k);
  const int64_t w_bytes = n * k * bits / 8;
  TORCH_CHECK(w.scalar_type() == torch::kUInt8 && w.is_contiguous() && w.numel() == w_bytes, "w: expected contiguous uint8 with N*K*",
              bits, "/8 = ", w_bytes, " bytes, got ", w.scalar_type(), " ", w.numel());
  check_table(scale, "scale", x.scalar_type(), k / group, n);
  if (zero) check_table(*zero, "zero", x.scalar_type(), k / group, n);
  if (bias) {
    TORCH_CHECK(bias->is_cuda() && bias->scalar_type() == x.scalar_type() && bias->is_contiguous() && bias->numel() == n,
                "bias: expected a contiguous CUDA ", x.scalar_type(), " vector of N=", n, " elements");
  }
  W4A16Args p{};
  p.m = int(m), p.n = int(n), p.k = int(k), p.group = int(group);
  p.lda = x.stride(0), p.ldd = out.stride(0);
  p.x = x.data_ptr(), p.w = w.data_ptr(), p.scale = scale.data_ptr(), p.zero = zero ? zero->data_ptr() : nullptr;
  p.bias = bias ? bias->data_ptr() : nullptr;
  p.out = out.data_ptr();
  p.config = int(config);
  p.act = x.scalar_type() == torch::kBFloat16 ? kActBF16 : kActF16;
  p.device = x.get_device();
  p.sm_count = sm_count(p.device);
  return p;
}

// The GEMM (config: a W4A16Config). `mm` / `workspace` are the extension's dispatchers (w4a16_mm or
// w8a16_mm and their workspace sizes).
inline void mixed_input_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale,
                           c10::optional<torch::Tensor> zero, c10::optional<torch::Tensor> bias, int64_t group, int64_t config,
                           int bits, char const* (*mm)(W4A16Args const&, cudaStream_t), size_t (*workspace)(W4A16Args const&),
                           char const* name) {
  W4A16Args p = mixed_input_args(out, x, w, scale, zero, bias, group, config, bits);
  if (p.m == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  torch::Tensor ws = attach_workspace(p, workspace(p), x);
  char const* err = mm(p, c10::cuda::getCurrentCUDAStream(p.device).stream());
  TORCH_CHECK(err == nullptr, "cutlass ", name, ": ", err ? err : "");
}

}  // namespace qlinear_cutlass
