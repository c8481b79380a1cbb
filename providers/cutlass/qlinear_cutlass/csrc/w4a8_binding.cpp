// The torch-facing side of the W4A8 extension (its own module: a W4A8 user builds only the int4 x FP8
// GEMMs and the activation quantizer): argument checks that name the bad field, then one call into the
// CUTLASS / quantizer translation units. Launches go on torch's current stream with workspace from
// torch's caching allocator, so calls are CUDA-graph capturable.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include "torch_binding_util.h"

#include "act_quant.h"
#include "w4a8_api.h"

namespace qlc = qlinear_cutlass;

namespace {

// Dynamic per-token FP8 (the reference's numerics: scale = amax / 448, true division, RNE, saturating).
void quant_fp8_per_token(torch::Tensor x, torch::Tensor q, torch::Tensor scale) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 2 && x.stride(1) == 1, "x: expected a 2-D CUDA tensor with contiguous rows");
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf, "x.dtype: expected bfloat16 or float16, got ",
              x.scalar_type());
  TORCH_CHECK(x.size(1) % 8 == 0 && x.stride(0) % 8 == 0, "x: K and the row stride must be multiples of 8 (16-byte loads)");
  TORCH_CHECK(q.is_cuda() && q.is_contiguous() && q.sizes() == x.sizes() && q.scalar_type() == torch::kFloat8_e4m3fn,
              "q: expected a contiguous float8_e4m3fn tensor shaped like x");
  TORCH_CHECK(scale.is_cuda() && scale.is_contiguous() && scale.scalar_type() == torch::kFloat32 && scale.numel() == x.size(0),
              "scale: expected fp32 [M]");
  if (x.size(0) == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  char const* err = qlc::quant_per_token(x.data_ptr(), x.scalar_type() == torch::kBFloat16, int(x.size(0)), int(x.size(1)), x.stride(0),
                                         q.data_ptr(), scale.data_ptr<float>(), nullptr, nullptr, qlc::kQuantFp8,
                                         c10::cuda::getCurrentCUDAStream(x.get_device()).stream());
  TORCH_CHECK(err == nullptr, "cutlass quant_fp8_per_token: ", err ? err : "");
}

void check_f32_vec(torch::Tensor const& t, char const* name, int64_t n) {
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == n, name,
              ": expected a contiguous CUDA float32 vector of ", n, " elements, got ", t.scalar_type(), " ", t.sizes());
}

// out [M, N] = chan_scale[n] * token_scale[m] * (xq [M, K] @ lut(w)^T) + bias; see w4a8.cuh.
void w4a8_mm(torch::Tensor out, torch::Tensor xq, torch::Tensor token_scale, torch::Tensor w, torch::Tensor scale_lut,
             torch::Tensor chan_scale, c10::optional<torch::Tensor> bias, int64_t group, int64_t config) {
  TORCH_CHECK(xq.is_cuda() && w.is_cuda() && out.is_cuda(), "xq, w, out: expected CUDA tensors");
  TORCH_CHECK(xq.scalar_type() == torch::kFloat8_e4m3fn, "xq.dtype: expected float8_e4m3fn, got ", xq.scalar_type());
  TORCH_CHECK(out.scalar_type() == torch::kBFloat16 || out.scalar_type() == torch::kHalf, "out.dtype: expected bfloat16 or float16");
  TORCH_CHECK(xq.dim() == 2 && out.dim() == 2, "xq, out: expected 2-D tensors");
  const int64_t m = xq.size(0), k = xq.size(1), n = out.size(1);
  TORCH_CHECK(out.size(0) == m, "out.shape: expected [", m, ", N], got ", out.sizes());
  TORCH_CHECK(xq.stride(1) == 1 && out.stride(1) == 1, "xq, out: the last dimension must be contiguous");
  TORCH_CHECK(xq.stride(0) % 16 == 0 && out.stride(0) % 8 == 0, "xq, out: row strides must be 16-byte aligned");
  TORCH_CHECK(n % 16 == 0 && k % 128 == 0, "N must be a multiple of 16 and K of 128, got N=", n, " K=", k);
  TORCH_CHECK(group > 0 && k % group == 0 && (group % 128 == 0 || group == k),
              "group: expected a multiple of 128 dividing K, or K; got ", group, " for K=", k);
  TORCH_CHECK(w.scalar_type() == torch::kUInt8 && w.is_contiguous() && w.numel() == n * k / 2, "w: expected contiguous uint8 with N*K/2 = ",
              n * k / 2, " bytes, got ", w.scalar_type(), " ", w.numel());
  TORCH_CHECK(scale_lut.is_cuda() && scale_lut.scalar_type() == torch::kUInt8 && scale_lut.is_contiguous() &&
                  scale_lut.numel() == (k / group) * n * 8,
              "scale_lut: expected contiguous CUDA uint8 [K/group, N, 8] = ", (k / group) * n * 8, " bytes, got ", scale_lut.numel());
  check_f32_vec(token_scale, "token_scale", m);
  check_f32_vec(chan_scale, "chan_scale", n);
  if (bias) {
    TORCH_CHECK(bias->is_cuda() && bias->scalar_type() == out.scalar_type() && bias->is_contiguous() && bias->numel() == n,
                "bias: expected a contiguous CUDA ", out.scalar_type(), " vector of N=", n, " elements");
  }
  if (m == 0) return;
  const c10::cuda::CUDAGuard guard(xq.device());
  qlc::W4A8Args p{};
  p.m = int(m), p.n = int(n), p.k = int(k), p.group = int(group);
  p.lda = xq.stride(0), p.ldd = out.stride(0);
  p.xq = xq.data_ptr(), p.token_scale = token_scale.data_ptr<float>();
  p.w = w.data_ptr(), p.scale_lut = scale_lut.data_ptr(), p.chan_scale = chan_scale.data_ptr<float>();
  p.bias = bias ? bias->data_ptr() : nullptr;
  p.out = out.data_ptr();
  p.config = int(config);
  p.out_type = out.scalar_type() == torch::kBFloat16 ? qlc::kW4A8OutBF16 : qlc::kW4A8OutF16;
  p.device = xq.get_device();
  p.sm_count = qlc::sm_count(p.device);
  torch::Tensor workspace = qlc::attach_workspace(p, qlc::w4a8_mm_workspace(p), xq);
  char const* err = qlc::w4a8_mm(p, c10::cuda::getCurrentCUDAStream(p.device).stream());
  TORCH_CHECK(err == nullptr, "cutlass w4a8_mm: ", err ? err : "");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("w4a8_mm", &w4a8_mm, "int4 x FP8 mixed-input GEMM (lookup-table scales, channel / token scales and bias in the epilogue)");
  m.def("quant_fp8_per_token", &quant_fp8_per_token, "dynamic per-token FP8 activation quantization");
}
