"""MX formats over FlashInfer (SM100-class Blackwell only; UNVERIFIED here, no such GPU in this workplace).

* ``FlashInferMxFp4LinearKernel``: ``mm_fp4(..., block_size=32, use_nvfp4=False, backend="cute-dsl")``,
  E2M1 weights [N, K/2] and E8M0 scales swizzled 128x4; weight rows padded to N % 128 to match the
  scale tiles; needs the CuTe-DSL runtime (``cutlass`` Python module).
* ``FlashInferCutlassMxfp8LinearKernel``: ``mm_mxfp8(a [M,K] e4m3, b [K,N] column-major, a_scale,
  b_scale (flat swizzled E8M0, 128x4 with rows padded to 128), out=None, out_dtype, backend="cutlass")``
  (flashinfer 0.7.2.post1: cc 100/103/107/110/120/121; n, k >= 128; 1-D swizzled scales only). The
  reference system padded M to 128; 0.7.2 sizes a_descale from round_up(M, 128) itself, so only the
  scales are padded.

Activations are quantized with ``qlinear.formats`` (the reference's numerics). JIT-compiles on first use.
"""

from __future__ import annotations

import torch

from qlinear.kernel import MxFp4LinearKernel, Mxfp8LinearKernel

from . import activation as A
from .layouts import pad_rows, round_up, slice_output, swizzle_128x4, swizzle_mx_scale_flat
from .library import JIT_NOTE, cuda_gate, fn


class FlashInferMxFp4LinearKernel(MxFp4LinearKernel):
    provider = "flashinfer"
    backend = "flashinfer_cutedsl"
    priority = 25
    min_capability = 100
    notes = JIT_NOTE

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, capabilities=(100, 103, 107), function="mm_fp4", backend="cute-dsl", needs=("cutlass",))

    @classmethod
    def can_implement(cls, c):
        n, k = c.weight_shape
        if k % 128:
            return False, f"K={k} must be a multiple of 128 (whole 4-column tiles of 32-element scales)"
        return True, None

    def process_weights_after_loading(self, layer):
        n, _ = self.config.weight_shape
        np_ = round_up(n, 128)
        self.replace_parameter(layer, "weight", pad_rows(layer.weight.data, np_))
        self.replace_parameter(layer, "weight_scale", swizzle_128x4(layer.weight_scale.data))  # [Np, K/32]
        self.ones = torch.ones(1, dtype=torch.float32, device=layer.weight.device)

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n = c.weight_shape[0]
        x2 = x.reshape(-1, x.shape[-1])
        xq, x_sf = A.mxfp4(x2)
        want = c.out_dtype or x.dtype
        dt = want if want in (torch.bfloat16, torch.float16) else torch.bfloat16
        out = fn("mm_fp4")(xq, layer.weight.t(), x_sf, layer.weight_scale.t(), self.ones, dt, None, block_size=32,
                           use_8x4_sf_layout=False, backend="cute-dsl", use_nvfp4=False)
        out = slice_output(out, n).to(want)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], n)


class FlashInferCutlassMxfp8LinearKernel(Mxfp8LinearKernel):
    provider = "flashinfer"
    backend = "flashinfer_cutlass"
    priority = 25
    min_capability = 100
    notes = JIT_NOTE

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, min_capability=100, function="mm_mxfp8", backend="cutlass")

    @classmethod
    def can_implement(cls, c):
        n, k = c.weight_shape
        if k < 128 or n < 128:
            return False, f"mm_mxfp8 needs K >= 128 and N >= 128, got N={n}, K={k}"
        if k % 128:
            return False, f"K={k} must be a multiple of 128 (whole 4-column tiles of 32-element scales)"
        return True, None

    def process_weights_after_loading(self, layer):
        self.replace_parameter(layer, "weight", layer.weight.data.contiguous())  # [N, K]; b = weight.t()
        self.replace_parameter(layer, "weight_scale", swizzle_mx_scale_flat(layer.weight_scale.data))

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n = c.weight_shape[0]
        x2 = x.reshape(-1, x.shape[-1])
        xq, x_sf = A.mxfp8(x2)
        want = c.out_dtype or x.dtype
        dt = want if want in (torch.bfloat16, torch.float16) else torch.bfloat16
        out = fn("mm_mxfp8")(xq, layer.weight.t(), x_sf, layer.weight_scale, out=None, out_dtype=dt, backend="cutlass")
        out = out.to(want)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], n)
