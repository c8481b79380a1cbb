// The torch-facing side of the W4A16 extension (its own module, so a W4A16 user builds only the
// mixed-input GEMMs for int4 codes): the argument checks of mixed_input_binding.h, then one call into
// the CUTLASS translation units. Launches go on torch's current stream with workspace from torch's
// caching allocator, so calls are CUDA-graph capturable.
#include "mixed_input_binding.h"

namespace qlc = qlinear_cutlass;

namespace {

// w: uint8 [N*K/2], int4 codes in the re-laid order (qlinear_cutlass.w4a16_layout).
void w4a16_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> zero,
              c10::optional<torch::Tensor> bias, int64_t group, int64_t config) {
  qlc::mixed_input_mm(out, x, w, scale, zero, bias, group, config, 4, qlc::w4a16_mm, qlc::w4a16_mm_workspace, "w4a16_mm");
}

// The decode kernel (M <= 16) on the same weight: ws fp32 split-K planes, counters int32 zeroed (left
// zeroed), splits 0 = one wave's worth, warps 0 = the launcher's rule.
void w4a16_decode(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> zero,
                  c10::optional<torch::Tensor> bias, torch::Tensor ws, torch::Tensor counters, int64_t group, int64_t splits,
                  int64_t warps, bool pdl) {
  qlc::W4A16DecodeArgs a{};
  a.gemm = qlc::mixed_input_args(out, x, w, scale, zero, bias, group, 0, 4);
  const auto& g = a.gemm;
  TORCH_CHECK(qlc::w4a16_decode_applies(g.m, g.n, g.k, g.group),
              "w4a16_decode: takes 1 <= M <= 16, N a multiple of 64, K of 128 and groups of whole 64-k blocks; got M=", g.m,
              " N=", g.n, " K=", g.k, " group=", g.group);
  TORCH_CHECK(ws.is_cuda() && ws.scalar_type() == torch::kFloat && ws.is_contiguous() && ws.get_device() == g.device,
              "ws: expected a contiguous float32 tensor on x's device");
  TORCH_CHECK(counters.is_cuda() && counters.scalar_type() == torch::kInt && counters.is_contiguous() &&
                  counters.get_device() == g.device,
              "counters: expected a contiguous int32 tensor on x's device");
  TORCH_CHECK(splits >= 0 && (warps == 0 || warps == 4 || warps == 8), "splits: expected >= 0; warps: 0, 4 or 8");
  a.ws = ws.data_ptr<float>(), a.ws_floats = ws.numel();
  a.counters = counters.data_ptr<int>(), a.counters_len = counters.numel();
  a.splits = int(splits), a.warps = int(warps), a.pdl = pdl ? 1 : 0;
  const c10::cuda::CUDAGuard guard(x.device());
  char const* err = qlc::w4a16_decode(a, c10::cuda::getCurrentCUDAStream(g.device).stream());
  TORCH_CHECK(err == nullptr, "cutlass w4a16_decode: ", err ? err : "");
}

// Act-order at M <= 16: out [M, K] = x [:, perm], PDL-launched ahead of the decode kernel. Checked by the
// caller (qlinear_cutlass.w4a16); only what would read or write out of bounds is checked here.
void w4a16_gather(torch::Tensor out, torch::Tensor x, torch::Tensor perm, bool pdl) {
  TORCH_CHECK(x.is_cuda() && out.is_cuda() && perm.is_cuda() && perm.scalar_type() == torch::kLong && perm.is_contiguous() &&
                  out.is_contiguous() && x.dim() == 2 && x.stride(1) == 1 && out.sizes() == x.sizes() &&
                  perm.numel() == x.size(1) && out.element_size() == 2 && x.scalar_type() == out.scalar_type(),
              "w4a16_gather: expected CUDA x [M, K] (16-bit, unit column stride), out [M, K] contiguous, perm int64 [K]");
  qlc::W4A16GatherArgs a{out.data_ptr(), x.data_ptr(), perm.data_ptr<int64_t>(), int(x.size(0)), int(x.size(1)), x.stride(0),
                         pdl ? 1 : 0};
  if (a.m == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  char const* err = qlc::w4a16_gather(a, c10::cuda::getCurrentCUDAStream(x.get_device()).stream());
  TORCH_CHECK(err == nullptr, "cutlass w4a16_gather: ", err ? err : "");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("w4a16_mm", &w4a16_mm, "int4 x bf16/fp16 mixed-input GEMM (group scales, optional zero terms, bias)");
  m.def("w4a16_decode", &w4a16_decode, "the decode kernel (M <= 16) on the same int4 weight, split-K workspace given");
  m.def("w4a16_gather", &w4a16_gather, "act-order: x's columns in the weight's sorted K order, PDL-launched (M <= 16)");
}
