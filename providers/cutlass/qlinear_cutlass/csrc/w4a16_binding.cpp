// The torch-facing side of the W4A16 extension (its own module, so a W4A16 user builds only the
// mixed-input GEMMs): argument checks that name the bad field, then one call into the CUTLASS
// translation units. Launches go on torch's current stream with workspace from torch's caching
// allocator, so calls are CUDA-graph capturable.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include "torch_binding_util.h"

#include "w4a16_api.h"

namespace qlc = qlinear_cutlass;

namespace {


void check_table(torch::Tensor const& t, char const* name, torch::ScalarType dt, int64_t groups, int64_t n) {
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == dt && t.is_contiguous() && t.dim() == 2 && t.size(0) == groups && t.size(1) == n,
              name, ": expected a contiguous CUDA ", c10::toString(dt), " [", groups, ", ", n, "] table, got ", t.scalar_type(),
              " ", t.sizes());
}

// out [M, N] = x [M, K] @ dequant(w)^T + bias, dequant(w)[n, k] = int4(w)[n, k] * scale[k/g, n] (+ zero[k/g, n]).
// w: uint8 [N*K/2] in the re-laid order (qlinear_cutlass.w4a16_layout).
void w4a16_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> zero,
              c10::optional<torch::Tensor> bias, int64_t group, int64_t config) {
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
  TORCH_CHECK(w.scalar_type() == torch::kUInt8 && w.is_contiguous() && w.numel() == n * k / 2, "w: expected contiguous uint8 with N*K/2 = ",
              n * k / 2, " bytes, got ", w.scalar_type(), " ", w.numel());
  check_table(scale, "scale", x.scalar_type(), k / group, n);
  if (zero) check_table(*zero, "zero", x.scalar_type(), k / group, n);
  if (bias) {
    TORCH_CHECK(bias->is_cuda() && bias->scalar_type() == x.scalar_type() && bias->is_contiguous() && bias->numel() == n,
                "bias: expected a contiguous CUDA ", x.scalar_type(), " vector of N=", n, " elements");
  }
  if (m == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  qlc::W4A16Args p{};
  p.m = int(m), p.n = int(n), p.k = int(k), p.group = int(group);
  p.lda = x.stride(0), p.ldd = out.stride(0);
  p.x = x.data_ptr(), p.w = w.data_ptr(), p.scale = scale.data_ptr(), p.zero = zero ? zero->data_ptr() : nullptr;
  p.bias = bias ? bias->data_ptr() : nullptr;
  p.out = out.data_ptr();
  p.config = int(config);
  p.act = x.scalar_type() == torch::kBFloat16 ? qlc::kActBF16 : qlc::kActF16;
  p.device = x.get_device();
  p.sm_count = qlc::sm_count(p.device);
  torch::Tensor workspace = qlc::attach_workspace(p, qlc::w4a16_mm_workspace(p), x);
  char const* err = qlc::w4a16_mm(p, c10::cuda::getCurrentCUDAStream(p.device).stream());
  TORCH_CHECK(err == nullptr, "cutlass w4a16_mm: ", err ? err : "");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("w4a16_mm", &w4a16_mm, "int4 x bf16/fp16 mixed-input GEMM (group scales, optional zero terms, bias)");
}
