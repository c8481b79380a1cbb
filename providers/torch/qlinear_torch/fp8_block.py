"""Block-scaled FP8 (1x128 activation groups, 128x128 weight blocks) with ``torch.nn.functional.
scaled_mm`` and ``ScalingType.BlockWise1x128`` / ``BlockWise128x128`` (cuBLASLt, SM90 only).

Scale layouts ``_scaled_mm_v2`` checks (ScaledBlas.cpp ``is_blockwise_*_scaling``), for
a = x_q [M, K] and b = W^T (the column-major view of W [N, K]):
  * scale_a [M, ceil(K/128)] with strides (1, M): column-major (so said on torch 2.11 too);
  * scale_b.t() [ceil(N/128), ceil(K/128)] with strides (ld, 1), i.e. W's own ``weight_scale_inv``
    layout; ld is ceil(K/128) in some torch versions and that rounded up to 4 in others, so both
    are tried once at load time and the one that runs is kept.
Shapes are padded (at load time for W, per call for x only when K % 128 != 0) to K % 128 == 0,
N % 16 == 0 and M % 4 == 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qlinear.kernel import Fp8BlockScaledMMLinearKernel

from . import actquant as AQ
from . import compiled
from .common import CUDA_W8A8_TABLE_VERSION, PRIO_CUDA, as_2d, gate_cuda, out_dtype, param, round_up

FP8 = torch.float8_e4m3fn


def _blockwise_api():
    st = getattr(F, "ScalingType", None)
    if not hasattr(F, "scaled_mm") or st is None or not hasattr(st, "BlockWise1x128") or not hasattr(st, "BlockWise128x128"):
        return None
    return st


class TorchCudaFp8BlockScaledMMLinearKernel(Fp8BlockScaledMMLinearKernel):
    """``F.scaled_mm`` blockwise 1x128 x 128x128 on SM90 (torch >= 2.10 API)."""

    backend = "torch"
    priority = PRIO_CUDA
    table_version = CUDA_W8A8_TABLE_VERSION
    min_capability = 90
    apply_input_quant = True

    @classmethod
    def is_supported(cls, platform=None):
        ok, why = gate_cuda(platform, 90, exact_cc=90)
        if not ok:
            return ok, why
        if _blockwise_api() is None:
            return False, f"torch {torch.__version__} has no torch.nn.functional.scaled_mm with ScalingType.BlockWise1x128/BlockWise128x128"
        return True, None

    @classmethod
    def can_implement(cls, c):
        if tuple(c.weight_block) != (128, 128):
            return False, f"weight blocks must be 128x128, got {c.weight_block}"
        if c.activation_quant_key.scale.group_shape.col != 128:
            return False, f"activation groups must be 1x128, got {c.activation_quant_key.scale.group_shape}"
        k = c.weight_shape[1]
        if k % 512:
            # seen on the H100 (torch 2.11): K=520 -> "scale_b must have shape 8 x 3", i.e. the K/128
            # scale rows are padded to a multiple of 4; whole 4-block rows avoid guessing that padding
            return False, f"K={k} must be a multiple of 512 (torch's blockwise scaled_mm pads K/128 scale rows to 4)"
        return True, None

    def process_weights_after_loading(self, layer):
        c = self.config
        n, k = c.weight_shape
        w = getattr(layer, "weight")
        s = getattr(layer, "weight_scale_inv", None)
        self.s_name = "weight_scale_inv"
        if s is None:
            s, self.s_name = getattr(layer, "weight_scale", None), "weight_scale"
        nb, kb = -(-n // 128), -(-k // 128)
        if tuple(w.shape) != (n, k) or w.dtype != FP8:
            raise ValueError(f"weight: expected float8_e4m3fn [N={n}, K={k}], got {w.dtype} {tuple(w.shape)}")
        if s is None or tuple(s.shape) != (nb, kb):
            raise ValueError(f"weight_scale_inv: expected fp32 [{nb}, {kb}], got {None if s is None else tuple(s.shape)}")
        self.np_, self.kp = round_up(n, 16), round_up(k, 128)
        wp = w.data
        if (self.np_, self.kp) != (n, k):
            wp = F.pad(wp.view(torch.uint8), (0, self.kp - k, 0, self.np_ - n)).view(FP8)
        self.replace_parameter(layer, "weight", wp.contiguous().t())  # [K, N] column-major view
        s32 = s.data.float().contiguous()
        s_ld4 = torch.ones(nb, round_up(kb, 4), dtype=torch.float32, device=s.device)
        s_ld4[:, :kb] = s32
        self._scale_layouts = [s32.t(), s_ld4[:, :kb].t()]  # [kb, nb] views; row stride kb or round_up(kb, 4)
        self.replace_parameter(layer, self.s_name, s_ld4)
        self._layout = None
        self._out_direct = True
        self._pick_layout(layer, torch.zeros(1, k, dtype=c.input_dtype, device=w.device))
        compiled.warmup(lambda m: self.apply_weights(layer, torch.zeros(m, k, dtype=c.input_dtype, device=w.device)))

    def _pick_layout(self, layer, x):
        """Find which scale_b row stride and output dtype this torch's _scaled_mm_v2 accepts."""
        errors = []
        for layout in (0, 1):
            for direct in (True, False):
                self._layout, self._out_direct = layout, direct
                try:
                    self.apply_weights(layer, x)
                    return
                except Exception as e:  # noqa: BLE001 - RuntimeError from ATen, ValueError/NotImplementedError from Python shims
                    errors.append(f"layout {layout}, out {'direct' if direct else 'bf16'}: {str(e).splitlines()[0][:200]}")
        raise RuntimeError("F.scaled_mm blockwise rejected every scale layout tried:\n  " + "\n  ".join(errors))

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n, k = c.weight_shape
        st = _blockwise_api()
        lead = x.shape[:-1]
        x2 = as_2d(x)
        m = x2.shape[0]
        if x2.dtype == FP8:
            raise ValueError("x.dtype: block FP8 needs the 16-bit activation (it quantizes per 1x128 group itself)")
        if self.kp != k:
            x2 = F.pad(x2, (0, self.kp - k))
        mp = round_up(m, 4)
        if mp != m:
            x2 = F.pad(x2, (0, 0, 0, mp - m))
        q, sa = compiled.get(AQ.fp8_dynamic_group)(x2)
        sa = sa.t().contiguous().t()  # [M, K/128] with strides (1, M)
        dt = out_dtype(c, x)
        odt = dt if self._out_direct else torch.bfloat16
        out = F.scaled_mm(q, param(layer, "weight"), sa, st.BlockWise1x128, self._scale_layouts[self._layout],
                          st.BlockWise128x128, output_dtype=odt)
        out = out[:m, :n]
        if bias is not None:
            out = out + bias.to(out.dtype)
        if out.dtype != dt:
            out = out.to(dt)
        return out.reshape(*lead, n)
