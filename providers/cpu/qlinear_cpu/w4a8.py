"""W4A8 on CPU: a W4A16 checkpoint's int4 codes x the activation quantized to int8 per token.

Opt-in (``QLINEAR_CPU_W4A8=1``, ``get_settings().cpu_w4a8``): quantizing the activation changes
the results (the relative error against fp32 grows from W4A16's to about that of INT8 W8A8; figures
in the provider README), so this kernel never takes a W4A16 layer unless asked. Once asked it ranks
above ``CpuAmxWNA16LinearKernel``.

Per call: x (act-order: columns gathered in ``g_idx`` order first) -> ``quantize_i8`` (dynamic,
symmetric, per row, straight into the A-tile layout; a row holding NaN/inf gets scale NaN, so its
output row is NaN) -> ``gemm_w4a8``: per K group, the exact int32 sum of q x (code - z) (z = 8
for GPTQ, AWQ's zero point): AVX512-VNNI on the unsigned codes with ``z * sum(q)`` taken off for a
few rows, AMX int8 tiles of code - z beyond; scaled by the group's weight scales in fp32, and by
the row's activation scale at the end. Both paths give the same bits, and rows never interact, so a row's
result does not depend on the batch (``batch_invariant``).

The codes are re-laid once at load (``pack.pack_int4_vnni4``: VNNI-4 rows, two per 64 bytes) —
the layer's only weight copy, 0.5 byte per weight like the checkpoint.
"""

from __future__ import annotations

import torch

from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types
from qlinear.settings import get_settings

from . import pack
from .common import PRIO, CpuKernelMixin, as_2d, bias_f32, new_out, out_dtype
from .mp import checked_codes, layer_reason, store_packed

# rows up to which the AVX512-VNNI path runs instead of AMX int8 tiles
# (measured: providers/cpu/README.md, "W4A8")
VEC_MAX_M = 4
# groups above this are applied as sub-groups of at most this depth (the same scale repeated), so
# one group's unpacked int8 tiles (32 columns x group bytes) stay in L1 for the AMX path
MAX_GROUP = 128
OPT_IN = ("opt-in: W4A8 quantizes the activation to int8 per token (other results than W4A16); "
          "set QLINEAR_CPU_W4A8=1 to allow it")


class CpuAmxW4A8LinearKernel(CpuKernelMixin, MPLinearKernel):
    """int4 GPTQ (``uint4b8``) / AWQ (``uint4`` + zero points) W4A16 layers run with int8
    activations; groups that are multiples of 32 or per channel; act-order; bf16 / fp16 in and out.
    Opt-in: ``QLINEAR_CPU_W4A8=1``."""

    priority = PRIO + 1  # above the W4A16 kernel, once the setting lets it in
    # the mp family's reference has no activation quantization: conformance runs against the
    # unquantized activation with the looser TOLERANCE below
    quantizes_activation = False
    batch_invariant = True
    # relative Frobenius error allowed against the W4A16 reference (fp64, unquantized activation):
    # the int8 activation adds ~1 % on the conformance kit's inputs (outlier channels x4)
    TOLERANCE = 3e-2

    @classmethod
    def can_implement(cls, c):
        if not get_settings().cpu_w4a8:
            return False, OPT_IN
        why = layer_reason(c, (scalar_types.uint4b8, scalar_types.uint4))
        return why is None, why

    def process_weights_after_loading(self, layer):
        c = self.config
        ext = self.ext()  # build (or load) the extension now, never in apply
        codes, ws, zp = checked_codes(self, layer)
        k = c.K
        self.k_pad = pack.round_up(k, 32)
        g = self.k_pad if c.effective_group_size == k else c.effective_group_size
        self.group = pack.split_group(g) if g > MAX_GROUP else g
        reps = g // self.group
        # per channel with K not a multiple of 32: the one scale row covers the padded K too
        store_packed(self, layer, pack.pack_int4_vnni4(codes, self.k_pad), ws.data, zp, reps)
        self._ext = ext

    def apply_weights(self, layer, x, bias=None):
        return self.run(layer, x, bias, VEC_MAX_M)

    def run(self, layer, x, bias, vec_max_m):
        """x [..., K] -> [..., N]; ``vec_max_m`` picks the path (tests compare both)."""
        c = self.config
        lead = x.shape[:-1]
        x2 = as_2d(x)
        m = x2.shape[0]
        if m == 0:  # the C++ kernels take M >= 1
            return new_out(0, c.N, out_dtype(c, x)).reshape(*lead, c.N)
        if self.perm is not None:
            x2 = x2.index_select(1, self.perm)
        # A-tile layout [ceil(M/16), Kq/64, min(M, 16), 64], zero past K
        q = torch.empty((m + 15) // 16, -(-self.k_pad // 64), min(m, 16), 64, dtype=torch.int8)
        sx = torch.empty(m, dtype=torch.float32)
        zp = torch.empty(m, dtype=torch.int32)
        self._ext.quantize_i8(x2, q, sx, zp, True, None, None)
        out = new_out(m, c.N, out_dtype(c, x))
        zc = getattr(layer, self.w_zp_name) if c.zero_points else None
        self._ext.gemm_w4a8(q, sx, getattr(layer, self.w_q_name), self.group, getattr(layer, self.w_s_name), zc,
                            bias_f32(bias), out, vec_max_m)
        return out.reshape(*lead, c.N)
