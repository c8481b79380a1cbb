// The torch-facing side of the NVFP4 (SM100) extension: argument checks that name the bad field, then
// one call into the quantizer / CUTLASS translation units. Launches go on torch's current stream with
// workspace from torch's caching allocator (CUDA-graph capturable).
// UNVERIFIED: this project has no SM100 GPU; the source is compile-checked only.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include "torch_binding_util.h"

#include "nvfp4_api.h"

namespace qlc = qlinear_cutlass;

namespace {

int64_t rows128(int64_t r) { return (r + 127) / 128 * 128; }

void check_sf(torch::Tensor const& t, char const* name, int64_t rows, int64_t k) {
  TORCH_CHECK(t.is_cuda() && t.is_contiguous() && t.element_size() == 1 && t.numel() == rows128(rows) * (k / 16), name,
              ": expected a contiguous CUDA byte tensor of round_up(", rows, ", 128) x ", k / 16, " E4M3 scales (the 128x4 layout)");
}

// x [M, K] bf16 / fp16 -> q uint8 [M, K/2], sf [round_up(M, 128), K/16] E4M3 (128x4 layout), with the global scale gs [1].
void quant_nvfp4(torch::Tensor x, torch::Tensor gs, torch::Tensor q, torch::Tensor sf) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 2 && x.stride(1) == 1, "x: expected a 2-D CUDA tensor with contiguous rows");
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf, "x.dtype: expected bfloat16 or float16");
  const int64_t m = x.size(0), k = x.size(1);
  TORCH_CHECK(k % 64 == 0 && x.stride(0) % 8 == 0, "x: K must be a multiple of 64 and rows 16-byte aligned");
  TORCH_CHECK(gs.is_cuda() && gs.scalar_type() == torch::kFloat32 && gs.numel() == 1, "gs: expected one CUDA float32");
  TORCH_CHECK(q.is_cuda() && q.is_contiguous() && q.scalar_type() == torch::kUInt8 && q.numel() == m * k / 2, "q: expected uint8 [M, K/2]");
  check_sf(sf, "sf", m, k);
  const c10::cuda::CUDAGuard guard(x.device());
  char const* err = qlc::quant_nvfp4(x.data_ptr(), x.scalar_type() == torch::kBFloat16, int(m), int(k), x.stride(0),
                                     gs.data_ptr<float>(), q.data_ptr(), sf.data_ptr(),
                                     c10::cuda::getCurrentCUDAStream(x.get_device()).stream());
  TORCH_CHECK(err == nullptr, "cutlass quant_nvfp4: ", err ? err : "");
}

// out [M, N] = alpha * (xq @ w^T) + bias, both operands NVFP4 with 128x4-layout scales.
void nvfp4_mm(torch::Tensor out, torch::Tensor xq, torch::Tensor x_sf, torch::Tensor w, torch::Tensor w_sf, torch::Tensor alpha,
              c10::optional<torch::Tensor> bias) {
  TORCH_CHECK(out.is_cuda() && xq.is_cuda() && w.is_cuda(), "out, xq, w: expected CUDA tensors");
  TORCH_CHECK(out.scalar_type() == torch::kBFloat16 || out.scalar_type() == torch::kHalf, "out.dtype: expected bfloat16 or float16");
  TORCH_CHECK(xq.dim() == 2 && w.dim() == 2 && out.dim() == 2, "xq, w, out: expected 2-D tensors");
  const int64_t m = xq.size(0), k = xq.size(1) * 2, n = w.size(0);
  TORCH_CHECK(xq.is_contiguous() && xq.scalar_type() == torch::kUInt8, "xq: expected contiguous uint8 [M, K/2]");
  TORCH_CHECK(w.is_contiguous() && w.scalar_type() == torch::kUInt8 && w.size(1) * 2 == k, "w: expected contiguous uint8 [N, ", k / 2, "]");
  TORCH_CHECK(out.size(0) == m && out.size(1) == n && out.stride(1) == 1 && out.stride(0) % 8 == 0,
              "out: expected [", m, ", ", n, "] with contiguous, 16-byte aligned rows");
  TORCH_CHECK(k % 64 == 0 && n % 8 == 0, "K must be a multiple of 64 and N of 8, got N=", n, " K=", k);
  check_sf(x_sf, "x_sf", m, k);
  check_sf(w_sf, "w_sf", n, k);
  TORCH_CHECK(alpha.is_cuda() && alpha.scalar_type() == torch::kFloat32 && alpha.numel() == 1, "alpha: expected one CUDA float32");
  if (bias) {
    TORCH_CHECK(bias->is_cuda() && bias->scalar_type() == out.scalar_type() && bias->is_contiguous() && bias->numel() == n,
                "bias: expected a contiguous CUDA ", out.scalar_type(), " vector of N=", n, " elements");
  }
  if (m == 0) return;
  const c10::cuda::CUDAGuard guard(xq.device());
  qlc::NvFp4Args p{};
  p.m = int(m), p.n = int(n), p.k = int(k);
  p.xq = xq.data_ptr(), p.x_sf = x_sf.data_ptr(), p.w = w.data_ptr(), p.w_sf = w_sf.data_ptr();
  p.alpha = alpha.data_ptr<float>();
  p.bias = bias ? bias->data_ptr() : nullptr;
  p.out = out.data_ptr(), p.ldd = out.stride(0);
  p.device = xq.get_device();
  p.sm_count = qlc::sm_count(p.device);
  const bool bf16 = out.scalar_type() == torch::kBFloat16;
  torch::Tensor workspace = qlc::attach_workspace(p, bf16 ? qlc::nvfp4_mm_bf16_workspace(p) : qlc::nvfp4_mm_fp16_workspace(p), xq);
  auto stream = c10::cuda::getCurrentCUDAStream(p.device).stream();
  char const* err = bf16 ? qlc::nvfp4_mm_bf16(p, stream) : qlc::nvfp4_mm_fp16(p, stream);
  TORCH_CHECK(err == nullptr, "cutlass nvfp4_mm: ", err ? err : "");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("nvfp4_mm", &nvfp4_mm, "NVFP4 x NVFP4 block-scaled GEMM for SM100 (alpha and bias in the epilogue)");
  m.def("quant_nvfp4", &quant_nvfp4, "NVFP4 activation quantization (E2M1 codes, E4M3 scales in the 128x4 layout)");
}
