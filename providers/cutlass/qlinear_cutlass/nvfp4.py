"""CutlassNvFp4LinearKernel: NVFP4 W4A4 on Blackwell datacenter GPUs (sm_100a, B200 / GB200).

The activation is quantized to NVFP4 with the layer's ``input_global_scale`` in one launch
(``csrc/nvfp4_quant.cu``: E2M1 codes, E4M3 scales written straight into the 128x4 layout), then
CUTLASS's SM100 block-scaled GEMM (``csrc/nvfp4_sm100.cuh``, example 72a's collective) multiplies the
two NVFP4 operands and applies ``alpha = 1 / (input_global_scale * weight_global_scale)`` and the bias
in its epilogue. At load the weight codes stay as they are ([N, K/2], K-major) and the weight scales
are re-laid into the 128x4 layout (``qlinear.formats.swizzle``).

Accepts K a multiple of 64 (whole 128x4 scale tiles along K) and N of 8 (16-byte output rows); bf16 /
fp16 activations and outputs. Gated on compute capability 10.0 exactly (sm_100a code runs nowhere
else). UNVERIFIED: this project has no SM100 GPU; the selection, gates and re-lay are tested on CPU
under a simulated sm100 platform and the CUDA sources are compile-checked for sm_100a, but the
kernel has never run.
"""

from __future__ import annotations

import torch

from qlinear.formats.swizzle import round_up, swizzle_128x4
from qlinear.kernel import NvFp4LinearKernel

from .gates import CutlassKernelMixin, verdict

DTYPES = (torch.bfloat16, torch.float16)


class CutlassNvFp4LinearKernel(CutlassKernelMixin, NvFp4LinearKernel):
    priority = 22  # beside FlashInfer's NVFP4 backends (23-26) until an SM100 table says otherwise
    min_capability = 100
    notes = "UNVERIFIED (no SM100 GPU here); JIT-compiles its CUDA extension (CUTLASS SM100 block-scaled, sm_100a)"

    @classmethod
    def is_supported(cls, platform=None):
        return verdict(platform, arch=100)

    @classmethod
    def can_implement(cls, c):
        if c.act_dtype not in DTYPES:
            return False, f"activation dtype {c.act_dtype} is not bfloat16/float16"
        if c.out_dtype is not None and c.out_dtype not in DTYPES:
            return False, f"out_dtype {c.out_dtype} is not bfloat16/float16"
        n, k = c.weight_shape
        if k % 64:
            return False, f"K={k} must be a multiple of 64 (whole 128x4 scale tiles along K)"
        if n % 8:
            return False, f"N={n} must be a multiple of 8 (16-byte output rows)"
        return True, None

    def process_weights_after_loading(self, layer):
        from .build import load_nvfp4_extension

        n, k = self.config.weight_shape
        w, s = layer.weight.data, layer.weight_scale.data
        if w.dtype != torch.uint8 or tuple(w.shape) != (n, k // 2):
            raise ValueError(f"weight: expected uint8 [{n}, {k // 2}] (two E2M1 codes per byte), got {w.dtype} {tuple(w.shape)}")
        if s.element_size() != 1 or tuple(s.shape) != (n, k // 16):
            raise ValueError(f"weight_scale: expected E4M3 [{n}, {k // 16}], got {s.dtype} {tuple(s.shape)}")
        self.replace_parameter(layer, "weight", w.contiguous())
        self.replace_parameter(layer, "weight_scale", swizzle_128x4(s.view(torch.float8_e4m3fn)).view(torch.uint8))
        alpha = getattr(layer, "alpha", None)
        if alpha is None:
            alpha = 1.0 / (layer.input_global_scale.data.float() * layer.weight_global_scale.data.float())
        self.replace_parameter(layer, "alpha", alpha.data.float().reshape(1).contiguous())
        self.replace_parameter(layer, "input_global_scale", layer.input_global_scale.data.float().reshape(1).contiguous())
        self._ext = load_nvfp4_extension()  # build here, never in apply

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n, k = c.weight_shape
        x2 = x.reshape(-1, k)
        if x2.stride(-1) != 1 or x2.stride(0) % 8 or x2.data_ptr() % 16:
            x2 = x2.contiguous() if x2.stride(-1) != 1 or x2.stride(0) % 8 else x2.clone()
        m = x2.shape[0]
        out_dt = c.out_dtype or x.dtype
        out = torch.empty((m, n), dtype=out_dt, device=x.device)
        if m:
            xq = torch.empty((m, k // 2), dtype=torch.uint8, device=x.device)
            x_sf = torch.empty((round_up(m, 128), k // 16), dtype=torch.uint8, device=x.device)
            self._ext.quant_nvfp4(x2, layer.input_global_scale, xq, x_sf)
            if bias is not None:
                bias = bias.to(out_dt).contiguous()
            self._ext.nvfp4_mm(out, xq, x_sf, layer.weight, layer.weight_scale, layer.alpha, bias)
        return out.reshape(*x.shape[:-1], n)
