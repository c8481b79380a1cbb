// The torch-facing side of the extension: argument checks that name the bad field, then one call into
// the CUTLASS / quantization translation units (which never see torch). Every launch goes on torch's
// current stream and allocates through torch's caching allocator, so calls are CUDA-graph capturable.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include "torch_binding_util.h"

#include "act_quant.h"
#include "scaled_mm_api.h"

namespace qlc = qlinear_cutlass;

namespace {

void check_ok(char const* err, char const* what) { TORCH_CHECK(err == nullptr, what, ": ", err ? err : ""); }


void check_vec(torch::Tensor const& t, char const* name, torch::ScalarType dt, int64_t full) {
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == dt && t.is_contiguous(), name, ": expected a contiguous CUDA ",
              c10::toString(dt), " vector");
  TORCH_CHECK(t.numel() == 1 || t.numel() == full, name, ": expected 1 or ", full, " elements, got ", t.numel());
}

// out [M, N] = epilogue(a [M, K] @ b [N, K]^T); see scaled_mm_api.h for the epilogue.
void scaled_mm(torch::Tensor out, torch::Tensor a, torch::Tensor b, torch::Tensor a_scale, torch::Tensor b_scale,
               c10::optional<torch::Tensor> bias, c10::optional<torch::Tensor> azp, c10::optional<torch::Tensor> azp_adj,
               int64_t config) {
  const bool is_int = a.scalar_type() == torch::kInt8;
  TORCH_CHECK(is_int || a.scalar_type() == torch::kFloat8_e4m3fn, "a.dtype: expected int8 or float8_e4m3fn, got ", a.scalar_type());
  TORCH_CHECK(b.scalar_type() == a.scalar_type(), "b.dtype: expected ", a.scalar_type(), " like a, got ", b.scalar_type());
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2, "a, b, out: expected 2-D tensors");
  TORCH_CHECK(a.is_cuda() && b.is_cuda() && out.is_cuda(), "a, b, out: expected CUDA tensors");
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  TORCH_CHECK(b.size(1) == k, "b.shape: expected [N, ", k, "], got ", b.sizes());
  TORCH_CHECK(out.size(0) == m && out.size(1) == n, "out.shape: expected [", m, ", ", n, "], got ", out.sizes());
  TORCH_CHECK(out.scalar_type() == torch::kBFloat16 || out.scalar_type() == torch::kHalf, "out.dtype: expected bfloat16 or float16");
  TORCH_CHECK(a.stride(1) == 1 && b.stride(1) == 1 && out.stride(1) == 1, "a, b, out: the last dimension must be contiguous");
  TORCH_CHECK(b.stride(0) == k, "b: expected a contiguous [N, K] weight");
  TORCH_CHECK(k % 16 == 0 && n % 16 == 0, "K and N must be multiples of 16 (TMA needs 16-byte aligned rows), got N=", n, " K=", k);
  TORCH_CHECK(a.stride(0) % 16 == 0 && out.stride(0) % 8 == 0, "a, out: row strides must be 16-byte aligned");
  check_vec(a_scale, "a_scale", torch::kFloat32, m);
  check_vec(b_scale, "b_scale", torch::kFloat32, n);
  if (bias) {
    check_vec(*bias, "bias", out.scalar_type(), n);
    TORCH_CHECK(bias->numel() == n, "bias: expected N elements");
  }
  TORCH_CHECK(is_int || (!azp && !azp_adj), "azp, azp_adj: zero points are INT8 only");
  TORCH_CHECK(azp.has_value() == azp_adj.has_value(), "azp, azp_adj: give both or neither");
  if (azp) {
    check_vec(*azp, "azp", torch::kInt32, m);
    check_vec(*azp_adj, "azp_adj", torch::kInt32, n);
    TORCH_CHECK(azp_adj->numel() == n, "azp_adj: expected N column sums");
  }
  if (m == 0) return;
  const c10::cuda::CUDAGuard guard(a.device());
  qlc::ScaledMMArgs p{};
  p.m = int(m), p.n = int(n), p.k = int(k);
  p.lda = a.stride(0), p.ldd = out.stride(0);
  p.a = a.data_ptr(), p.b = b.data_ptr(), p.d = out.data_ptr();
  p.a_scale = a_scale.data_ptr<float>(), p.b_scale = b_scale.data_ptr<float>();
  p.a_per_row = a_scale.numel() == m && m > 1, p.b_per_col = b_scale.numel() == n && n > 1;
  // one row (or one column) with a vector scale: per-row and per-tensor read the same element
  p.bias = bias ? bias->data_ptr() : nullptr;
  p.azp = azp ? azp->data_ptr<int32_t>() : nullptr;
  p.azp_adj = azp_adj ? azp_adj->data_ptr<int32_t>() : nullptr;
  p.azp_per_row = azp && azp->numel() == m && m > 1;
  p.config = int(config);
  p.out_type = out.scalar_type() == torch::kBFloat16 ? qlc::kOutBF16 : qlc::kOutF16;
  p.device = a.get_device();
  p.sm_count = qlc::sm_count(p.device);
  torch::Tensor workspace = qlc::attach_workspace(p, is_int ? qlc::scaled_mm_int8_workspace(p) : qlc::scaled_mm_fp8_workspace(p), a);
  auto stream = c10::cuda::getCurrentCUDAStream(p.device).stream();
  check_ok(is_int ? qlc::scaled_mm_int8(p, stream) : qlc::scaled_mm_fp8(p, stream), "cutlass scaled_mm");
}

struct XView {
  void const* ptr;
  bool bf16;
  int m, k;
  int64_t ld;
};

XView check_x(torch::Tensor const& x, torch::Tensor const& q) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 2 && x.stride(1) == 1, "x: expected a 2-D CUDA tensor with contiguous rows");
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf, "x.dtype: expected bfloat16 or float16, got ",
              x.scalar_type());
  TORCH_CHECK(q.is_cuda() && q.is_contiguous() && q.sizes() == x.sizes(), "q: expected a contiguous tensor shaped like x");
  return {x.data_ptr(), x.scalar_type() == torch::kBFloat16, int(x.size(0)), int(x.size(1)), x.stride(0)};
}

int kind_of(torch::Tensor const& q, bool asym) {
  if (q.scalar_type() == torch::kFloat8_e4m3fn) return qlc::kQuantFp8;
  TORCH_CHECK(q.scalar_type() == torch::kInt8, "q.dtype: expected float8_e4m3fn or int8, got ", q.scalar_type());
  return asym ? qlc::kQuantInt8Asym : qlc::kQuantInt8Sym;
}

// Dynamic per-token: q, scale [M] (and zp [M]) written in place.
void quant_per_token(torch::Tensor x, torch::Tensor q, torch::Tensor scale, c10::optional<torch::Tensor> zp,
                     c10::optional<torch::Tensor> ub) {
  XView v = check_x(x, q);
  int kind = kind_of(q, zp.has_value());
  TORCH_CHECK(scale.is_contiguous() && scale.scalar_type() == torch::kFloat32 && scale.numel() == v.m, "scale: expected fp32 [M]");
  if (zp) TORCH_CHECK(zp->is_contiguous() && zp->scalar_type() == torch::kInt32 && zp->numel() == v.m, "zp: expected int32 [M]");
  if (ub) TORCH_CHECK(kind == qlc::kQuantFp8 && ub->scalar_type() == torch::kFloat32 && ub->numel() == 1, "ub: an fp32 [1] FP8 bound");
  const c10::cuda::CUDAGuard guard(x.device());
  auto stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  check_ok(qlc::quant_per_token(v.ptr, v.bf16, v.m, v.k, v.ld, q.data_ptr(), scale.data_ptr<float>(),
                                zp ? zp->data_ptr<int32_t>() : nullptr, ub ? ub->data_ptr<float>() : nullptr, kind, stream),
           "cutlass quant_per_token");
}

void quant_static(torch::Tensor x, torch::Tensor q, torch::Tensor scale, c10::optional<torch::Tensor> zp) {
  XView v = check_x(x, q);
  int kind = kind_of(q, false);
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && scale.numel() == 1, "scale: expected one fp32 element");
  if (zp) TORCH_CHECK(kind != qlc::kQuantFp8 && zp->scalar_type() == torch::kInt32 && zp->numel() == 1, "zp: one int32 (INT8 only)");
  const c10::cuda::CUDAGuard guard(x.device());
  auto stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  check_ok(qlc::quant_static(v.ptr, v.bf16, v.m, v.k, v.ld, q.data_ptr(), scale.data_ptr<float>(),
                             zp ? zp->data_ptr<int32_t>() : nullptr, kind, stream),
           "cutlass quant_static");
}

void quant_per_tensor_fp8(torch::Tensor x, torch::Tensor q, torch::Tensor scale, torch::Tensor amax_ws) {
  XView v = check_x(x, q);
  TORCH_CHECK(q.scalar_type() == torch::kFloat8_e4m3fn, "q.dtype: expected float8_e4m3fn");
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && scale.numel() == 1, "scale: expected one fp32 element");
  TORCH_CHECK(amax_ws.scalar_type() == torch::kFloat32 && amax_ws.numel() >= 1, "amax_ws: expected fp32 scratch");
  const c10::cuda::CUDAGuard guard(x.device());
  auto stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  check_ok(qlc::quant_per_tensor_fp8(v.ptr, v.bf16, v.m, v.k, v.ld, q.data_ptr(), scale.data_ptr<float>(),
                                     amax_ws.data_ptr<float>(), stream),
           "cutlass quant_per_tensor_fp8");
}

// Block FP8: out [M_pad, N] = a [M_pad, K] (1x128 group scales sfa_t [K/128, M_pad]) @ b [N, K]
// (128x128 block scales sfb [N/128, K/128]) + bias. M_pad % 4 == 0, N and K multiples of 128.
void block_fp8_mm(torch::Tensor out, torch::Tensor a, torch::Tensor b, torch::Tensor sfa_t, torch::Tensor sfb,
                  c10::optional<torch::Tensor> bias, int64_t config) {
  TORCH_CHECK(a.scalar_type() == torch::kFloat8_e4m3fn && b.scalar_type() == torch::kFloat8_e4m3fn, "a, b: expected float8_e4m3fn");
  TORCH_CHECK(a.is_cuda() && b.is_cuda() && out.is_cuda() && a.dim() == 2 && b.dim() == 2 && out.dim() == 2,
              "a, b, out: expected 2-D CUDA tensors");
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  TORCH_CHECK(m % 4 == 0, "a: the row count must be padded to a multiple of 4 (the M-major scale TMA)");
  TORCH_CHECK(n % 128 == 0 && k % 128 == 0, "N and K must be multiples of 128, got N=", n, " K=", k);
  TORCH_CHECK(a.is_contiguous() && b.is_contiguous() && out.is_contiguous(), "a, b, out: expected contiguous tensors");
  TORCH_CHECK(b.size(1) == k && out.size(0) == m && out.size(1) == n, "b, out: shapes do not match a");
  TORCH_CHECK(out.scalar_type() == torch::kBFloat16 || out.scalar_type() == torch::kHalf, "out.dtype: expected bfloat16 or float16");
  TORCH_CHECK(sfa_t.scalar_type() == torch::kFloat32 && sfa_t.is_contiguous() && sfa_t.dim() == 2 && sfa_t.size(0) == k / 128 &&
                  sfa_t.size(1) == m,
              "sfa_t: expected contiguous fp32 [K/128, M_pad]");
  TORCH_CHECK(sfb.scalar_type() == torch::kFloat32 && sfb.is_contiguous() && sfb.dim() == 2 && sfb.size(0) == n / 128 &&
                  sfb.size(1) == k / 128,
              "sfb: expected contiguous fp32 [N/128, K/128]");
  if (bias) {
    check_vec(*bias, "bias", out.scalar_type(), n);
    TORCH_CHECK(bias->numel() == n, "bias: expected N elements");
  }
  if (m == 0) return;
  const c10::cuda::CUDAGuard guard(a.device());
  qlc::ScaledMMArgs p{};
  p.m = int(m), p.n = int(n), p.k = int(k), p.lda = k, p.ldd = n;
  p.a = a.data_ptr(), p.b = b.data_ptr(), p.d = out.data_ptr();
  p.a_scale = sfa_t.data_ptr<float>(), p.b_scale = sfb.data_ptr<float>();
  p.bias = bias ? bias->data_ptr() : nullptr;
  p.config = int(config);
  p.out_type = out.scalar_type() == torch::kBFloat16 ? qlc::kOutBF16 : qlc::kOutF16;
  p.device = a.get_device();
  p.sm_count = qlc::sm_count(p.device);
  torch::Tensor workspace = qlc::attach_workspace(p, qlc::block_fp8_mm_workspace(p), a);
  check_ok(qlc::block_fp8_mm(p, c10::cuda::getCurrentCUDAStream(p.device).stream()), "cutlass block_fp8_mm");
}

// 1 x 128 group FP8 quantization: q [M, K] (x's rows) and scale_t [K/128, ld_s] (row m of x -> column m).
void quant_per_group_fp8(torch::Tensor x, torch::Tensor q, torch::Tensor scale_t) {
  TORCH_CHECK(q.scalar_type() == torch::kFloat8_e4m3fn, "q.dtype: expected float8_e4m3fn");
  TORCH_CHECK(q.is_cuda() && q.dim() == 2 && q.size(1) == x.size(1) && q.size(0) >= x.size(0) && q.is_contiguous(),
              "q: expected contiguous [>= M, K]");
  XView v = check_x(x, q.narrow(0, 0, x.size(0)));
  TORCH_CHECK(scale_t.scalar_type() == torch::kFloat32 && scale_t.is_contiguous() && scale_t.dim() == 2 &&
                  scale_t.size(0) == v.k / 128 && scale_t.size(1) >= v.m,
              "scale_t: expected contiguous fp32 [K/128, >= M]");
  const c10::cuda::CUDAGuard guard(x.device());
  check_ok(qlc::quant_per_group_fp8(v.ptr, v.bf16, v.m, v.k, v.ld, q.data_ptr(), scale_t.data_ptr<float>(), scale_t.size(1),
                                    c10::cuda::getCurrentCUDAStream(x.get_device()).stream()),
           "cutlass quant_per_group_fp8");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scaled_mm", &scaled_mm, "W8A8 scaled GEMM with the scale/zero-point/bias epilogue");
  m.def("quant_per_token", &quant_per_token, "dynamic per-token FP8 / INT8 activation quantization");
  m.def("quant_static", &quant_static, "static per-tensor FP8 / INT8 activation quantization");
  m.def("block_fp8_mm", &block_fp8_mm, "block-scaled FP8 GEMM (1x128 activation groups, 128x128 weight blocks)");
  m.def("quant_per_group_fp8", &quant_per_group_fp8, "dynamic 1x128 group FP8 activation quantization");
  m.def("quant_per_tensor_fp8", &quant_per_tensor_fp8, "dynamic per-tensor FP8 activation quantization");
}
