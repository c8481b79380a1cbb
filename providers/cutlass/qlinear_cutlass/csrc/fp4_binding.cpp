// The torch-facing side of the FP4 weight-only extension (NVFP4 / MXFP4 E2M1 codes on the W4A16 GEMM,
// mixed_input_float.cuh; its own module per activation dtype, so an FP4 model builds only these GEMMs):
// the argument checks of mixed_input_binding.h, then one call into the CUTLASS translation units, on
// torch's current stream (CUDA-graph capturable).
#include "mixed_input_binding.h"

namespace qlc = qlinear_cutlass;

namespace {

void fp4_mm(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> bias,
            int64_t group, int64_t config, double alpha) {
  qlc::float_codes_mm(out, x, w, scale, bias, group, config, alpha, 4, true, qlc::fp4_mm, qlc::fp4_mm_workspace, "fp4_mm");
}

// The decode kernel (M <= 16, float_decode.cuh) on the same weight and packets.
void fp4_decode(torch::Tensor out, torch::Tensor x, torch::Tensor w, torch::Tensor scale, c10::optional<torch::Tensor> bias,
                torch::Tensor ws, torch::Tensor counters, int64_t group, int64_t splits, int64_t warps, bool pdl, int64_t rows,
                bool cluster, double alpha) {
  qlc::float_codes_decode(out, x, w, scale, bias, ws, counters, group, splits, warps, pdl, rows, cluster, alpha, 4, true, qlc::fp4_decode,
                          "fp4_decode");
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fp4_mm", &fp4_mm, "E2M1 x bf16/fp16 mixed-input GEMM (a scale per 16 or 32 k, fp32 alpha, bias)");
  m.def("fp4_decode", &fp4_decode, "the decode kernel (M <= 16) on the same E2M1 weight, split-K workspace given");
}
