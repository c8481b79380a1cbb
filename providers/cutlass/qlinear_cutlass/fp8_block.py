"""CutlassFp8BlockScaledMMLinearKernel: block-scaled FP8 (DeepSeek-V3 layout) on Hopper.

Activations quantized per 1 x 128 group in one launch (scales written group-major, the M-major layout
the GEMM's scale TMA reads), weights in 128 x 128 blocks as loaded (``weight_scale_inv`` [N/128, K/128]),
then CUTLASS's sm90 FP8 blockwise-scaling GEMM (scales applied per K block in the mainloop) with the
bias in the epilogue. The row count is padded to a multiple of 4 (the scale TMA needs 16-byte rows);
the padding rows are computed and dropped.
"""

from __future__ import annotations

import torch

from qlinear.kernel import Fp8BlockScaledMMLinearKernel, relay_block_weight

from . import configs
from .scaled_mm import IO_DTYPES, CutlassW8A8Mixin, as_rows

FP8 = torch.float8_e4m3fn
SMALL_MAX_M = 64  # 64x128 ping-pong tiles up to here, 128x128 cooperative above


class CutlassFp8BlockScaledMMLinearKernel(CutlassW8A8Mixin, Fp8BlockScaledMMLinearKernel):
    apply_input_quant = True

    @classmethod
    def can_implement(cls, c):
        why = cls.deepseek_layout_reason(c)
        if why:
            return False, why
        n, k = c.weight_shape
        if n % 128 or k % 128:
            return False, f"N={n} and K={k} must be multiples of 128 (whole scale blocks)"
        if c.input_dtype not in IO_DTYPES:
            return False, f"input dtype {c.input_dtype} is not bfloat16/float16"
        if c.out_dtype is not None and c.out_dtype not in IO_DTYPES:
            return False, f"out_dtype {c.out_dtype} is not bfloat16/float16 (the epilogue writes 16-bit)"
        return True, None

    def process_weights_after_loading(self, layer):
        from .build import load_extension

        self._s_name, self._nk = relay_block_weight(self, layer, self.config.weight_shape)
        self._ext = load_extension()  # build here, never in apply

    def apply_weights(self, layer, x, bias=None):
        n, k = self._nk
        lead = x.shape[:-1]
        if x.dtype == FP8:
            raise ValueError("x.dtype: the cutlass block-FP8 kernel quantizes 16-bit activations itself; got float8_e4m3fn")
        x2 = as_rows(x, k)
        m = x2.shape[0]
        dt = self._out_dtype(x)
        if m == 0:
            return torch.empty((*lead, n), dtype=dt, device=x.device)
        mp = -(-m // 4) * 4
        q = torch.empty((mp, k), dtype=FP8, device=x.device)
        s_t = torch.empty((k // 128, mp), dtype=torch.float32, device=x.device)
        if mp != m:  # the padding rows' codes and scales are never read back, but must be finite
            q[m:].view(torch.uint8).zero_()
            s_t[:, m:].fill_(1.0)
        self._ext.quant_per_group_fp8(x2, q, s_t)
        out = torch.empty((mp, n), dtype=dt, device=x.device)
        if bias is not None and bias.dtype != dt:
            bias = bias.to(dt)
        tile = configs.forced()  # small -> the 64-row tile; mid / large -> the 128-row tile
        small = m <= SMALL_MAX_M if tile is None else tile == configs.SMALL
        self._ext.block_fp8_mm(out, q, layer.weight, s_t, getattr(layer, self._s_name),
                               None if bias is None else bias.contiguous(), configs.SMALL if small else configs.LARGE)
        return out[:m].reshape(*lead, n)
