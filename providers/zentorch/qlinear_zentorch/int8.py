"""W8A8 INT8 through ``zentorch_dynamic_qlinear``: int8 weights with per-channel (or per-tensor)
scales, activations quantized inside the op per token, symmetric (s = amax / 127).

Facts about zentorch 2.13.0.2 this relies on (checked by tests/providers/zentorch):
- signature ``zentorch_dynamic_qlinear(input, weight int8 [N, K], weight_scales fp32 [N], bias?,
  *, is_weight_prepacked)``; output in the input's dtype.
- a per-tensor scale of shape [1] is NOT broadcast: it silently yields garbage/NaN, so it is
  expanded to [N] here; any other scale shape is refused with an error naming ``weight_scale``.
- float16 input silently yields garbage (Intel Xeon with QLINEAR_ZENTORCH_ANY_CPU=1) or raises (AMD
  EPYC without AVX512-FP16); float16 activations are widened to float32 (exact) and the output
  narrowed back. bfloat16 and float32 run natively.
- a row holding NaN / inf comes out finite (AMD EPYC: the op's per-token quantization does not carry
  it), so such rows are made NaN here (``propagate_non_finite``: one fp64 row sum of x); M = 0 fails
  inside the op (a null pointer), so an empty batch returns an empty output without calling it.
- the prepacked weight (``zentorch_weight_prepack_for_dynamic_qlinear`` + ``is_weight_prepacked``)
  gave WRONG results for bf16 activations with K > 2048 in a process that had used other weights
  (relative error 3 at K=2304, 5 at K=4096; Intel Xeon
  with QLINEAR_ZENTORCH_ANY_CPU=1) while the plain int8 [N, K] weight is right at every K and no
  slower, so the plain weight is used, behind the address-cache guard of ``weight_cache.py``.
"""

from __future__ import annotations

import torch

from qlinear.config import Int8ScaledMMLinearLayerConfig
from qlinear.kernel import Int8ScaledMMLinearKernel, propagate_non_finite

from . import gate, weight_cache

_OPS = ("zentorch_dynamic_qlinear",)


class ZentorchInt8ScaledMMLinearKernel(Int8ScaledMMLinearKernel):
    provider = "zentorch"
    backend = "zentorch"
    priority = 30  # above the torch provider's CPU int kernels (10-20): faster on Zen
    # int8 x int8 products accumulate exactly in int32 and the activation scale is per row, so a
    # row's result cannot depend on the rows around it (tests check needles at M = 1..257)
    batch_invariant = True

    @classmethod
    def is_supported(cls, platform=None):
        return gate.check(platform, _OPS)

    @classmethod
    def can_implement(cls, c: Int8ScaledMMLinearLayerConfig):
        if c.is_static_input_scheme:
            return False, "static input scale: zentorch_dynamic_qlinear only quantizes activations dynamically per token"
        if not c.input_symmetric:
            return False, "asymmetric activations (zero point): zentorch_dynamic_qlinear is symmetric only"
        return True, None

    # ---- weights ---------------------------------------------------------------------------
    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        w_name, s_name = self.layer_param_names[:2]
        w = getattr(layer, w_name)  # [K, N] int8, a transposed view of a contiguous [N, K]
        if w.dtype != torch.int8 or w.dim() != 2:
            raise ValueError(f"{w_name}: expected a 2-D int8 tensor [K, N], got {w.dtype} {tuple(w.shape)}")
        k, n = w.shape
        if self.config.weight_shape is not None and (n, k) != tuple(self.config.weight_shape):
            raise ValueError(f"{w_name}.shape: expected [K, N] = [{self.config.weight_shape[1]}, "
                             f"{self.config.weight_shape[0]}], got {tuple(w.shape)}")
        s = _per_channel_scale(getattr(layer, s_name), n, s_name)
        # plain [N, K] int8 at an address no freed weight of ours used (ZenDNN caches by address)
        self.replace_parameter(layer, w_name, weight_cache.place(w.t().contiguous()))
        weight_cache.claim(getattr(layer, w_name))
        self.replace_parameter(layer, s_name, s)

    # ---- GEMM ----------------------------------------------------------------------------------
    def apply_weights(self, layer, x, bias=None):
        w_name, s_name = self.layer_param_names[:2]
        w, s = getattr(layer, w_name), getattr(layer, s_name)
        n, k = w.shape
        if s.shape != (n,) or s.dtype != torch.float32 or not s.is_contiguous():
            # the op does not check: a wrong scale shape gives NaN or garbage silently
            raise ValueError(f"{s_name}: expected contiguous float32 [{n}] after process_weights_after_loading, "
                             f"got {s.dtype} {tuple(s.shape)}")
        lead = x.shape[:-1]
        out_dtype = self.config.out_dtype or x.dtype
        x2 = x.reshape(-1, k)
        if x2.shape[0] == 0:  # the op fails on an empty batch
            return torch.empty(*lead, n, dtype=out_dtype, device=x.device)
        if x2.dtype == torch.float16:  # zentorch's fp16 path is wrong or refused; fp32 is exact for fp16 values
            x2 = x2.float()
        x2 = x2.contiguous()
        b = None if bias is None else bias.to(x2.dtype)
        out = gate.op("zentorch_dynamic_qlinear")(x2, w, s, b, is_weight_prepacked=False)
        out = propagate_non_finite(x2, out)  # the op's quantization turns a NaN / inf row finite
        return out.to(out_dtype).reshape(*lead, n)


def _per_channel_scale(s: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """[1], [N], [N, 1] (or a 0-d scalar) -> contiguous float32 [N]; anything else is an error."""
    if s.numel() == 1 and s.dim() <= 2:
        return s.detach().float().reshape(1).expand(n).contiguous()
    if tuple(s.shape) in ((n,), (n, 1)):
        return s.detach().float().reshape(n).contiguous()
    raise ValueError(f"{name}.shape: expected [1] (per tensor), [N] or [N, 1] (per channel) with N={n}, "
                     f"got {tuple(s.shape)}")
