// The torch-facing side of the FP4 weight-only extension (NVFP4 / MXFP4 codes on the W4A16 GEMM,
// w4a16_fp4.cuh; its own module per activation dtype, so an FP4 model builds only these GEMMs): the
// argument checks, then one call into the CUTLASS translation units, on torch's current stream
// (CUDA-graph capturable).
#include <cmath>

#include "mixed_input_binding.h"

namespace qlc = qlinear_cutlass;

namespace {

// w: uint8 [N*K/2], E2M1 codes in the W4A16 order (qlinear_cutlass.w4a16_layout.weight_fp4); scale:
// [K/64, N, 64/group] packets in x's dtype (sub_scale_table); out = alpha * (x @ dequant(w)^T) + bias.
void fp4_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> bias,
            int64_t group, int64_t config, double alpha) {
  qlc::W4A16Args p = qlc::activation_args(out, x, bias);
  const int64_t n = p.n, k = p.k;
  TORCH_CHECK(group == 16 || (group == 32 && x.scalar_type() == torch::kBFloat16),
              "group: expected 16 (NVFP4) or 32 (MXFP4, bfloat16 activations only), got ", group, " with ", x.scalar_type());
  qlc::check_weight_bytes(w, n * k / 2, "N*K/2");
  const int64_t per = 64 / group;
  TORCH_CHECK(scale.is_cuda() && scale.scalar_type() == x.scalar_type() && scale.is_contiguous() && scale.dim() == 3 &&
                  scale.size(0) == k / 64 && scale.size(1) == n && scale.size(2) == per,
              "scale: expected a contiguous CUDA ", x.scalar_type(), " [", k / 64, ", ", n, ", ", per, "] packet table, got ",
              scale.scalar_type(), " ", scale.sizes());
  TORCH_CHECK(std::isfinite(alpha) && alpha != 0.0, "alpha: expected a finite non-zero factor, got ", alpha);
  p.group = int(group), p.w = w.data_ptr(), p.scale = scale.data_ptr(), p.config = int(config), p.alpha = float(alpha);
  qlc::launch_mixed_input(p, x, qlc::fp4_mm, qlc::fp4_mm_workspace, "fp4_mm");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fp4_mm", &fp4_mm, "E2M1 x bf16/fp16 mixed-input GEMM (a scale per 16 or 32 k, fp32 alpha, bias)");
}
