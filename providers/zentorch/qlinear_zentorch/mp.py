"""W4A16 through ``zentorch_woq_linear``: 4-bit weights (GPTQ ``uint4b8``, or ``uint4`` with zero
points), per-channel or grouped scales, bfloat16 activations, from the compressed-tensors layout.

Facts about zentorch 2.13.0.2 this relies on (checked by tests/providers/zentorch):
- ``zentorch_woq_repack_weight(int8 [N, K]) -> int32 [N, K/8]`` packs the low nibbles of its input
  8 per word, along K: for signed codes q in [-8, 7] that is the compressed-tensors packing of
  q + 8 XOR 0x88888888; for unsigned codes 0..15 it equals the compressed-tensors packing itself.
- ``zentorch_woq_linear(x bf16 [M, K], packed.t() [K/8, N], scales [G, N], zp [G, N]?, bias?)``.
  Without zero points the codes are signed int4 (w = q * s); with zero points they are unsigned
  (w = (u - zp) * s) and zp must be int8 (int32 fails, bf16 silently gives garbage).
- scales must be contiguous [G, N]. The op checks only dim 1 (= N): too few groups [G', N] gives
  NaN silently, [N, G] when N == G and a transposed (non-contiguous) [G, N] view give garbage
  silently. Shapes, dtypes and contiguity are therefore checked here, after loading and per call.
- activations must be bfloat16 (float16/float32 fail inside ZenDNN); 8-bit weights are not
  supported by this op. Act-order (g_idx) is not either, so the kernel sorts the input channels by
  group once at load (then every group is contiguous) and gathers x's columns the same way per call.
- ZenDNN caches the reordered weight by address: see ``weight_cache.py`` for the guard.
"""

from __future__ import annotations

import torch

from qlinear.config import MPLinearLayerConfig
from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types

from . import gate, weight_cache

_OPS = ("zentorch_woq_linear", "zentorch_woq_repack_weight")
_TYPES = (scalar_types.uint4b8, scalar_types.uint4)


class ZentorchWNA16LinearKernel(MPLinearKernel):
    provider = "zentorch"
    backend = "zentorch"
    # Below torch's CPU int4pack (20): on Zen 5 that is faster at decode sizes (M=1: 241 vs 384 us,
    # M=8: 789 vs 997 us on Zen 5); zentorch still serves what int4pack rejects (act-order,
    # N % 16), and QLINEAR_AUTOTUNE=1 picks per M where zentorch wins (M >= 32).
    priority = 15
    batch_invariant = False  # bf16 x dequantized-int4 sums in float: order may follow ZenDNN's M blocking
    quantizes_activation = False  # weight-only: activations stay bfloat16

    @classmethod
    def is_supported(cls, platform=None):
        return gate.check(platform, _OPS)

    @classmethod
    def can_implement(cls, c: MPLinearLayerConfig):
        if c.weight_type not in _TYPES:
            return False, (f"weight type {c.weight_type.name}: zentorch_woq_linear takes 4-bit weights only "
                           f"(uint4b8, or uint4 with zero points)")
        if not c.is_k_full:
            return False, ("a row-parallel slice of an act-order layer (is_k_full False) keeps the whole layer's "
                           "scale table; this kernel sorts whole groups only")
        if c.act_type != torch.bfloat16:
            return False, f"activations {str(c.act_type).removeprefix('torch.')}: zentorch_woq_linear takes bfloat16 only"
        return True, None

    # ---- weights ---------------------------------------------------------------------------
    def _groups(self) -> int:
        c = self.config
        return 1 if c.group_size == -1 else c.K // c.group_size

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        c = self.config
        n, k, g = c.N, c.K, self._groups()
        w_q, w_s, w_zp, w_g = self._get_weight_params(layer)
        _expect(self.w_q_name, w_q, (n, k // 8), torch.int32, "compressed-tensors layout, packed along K")
        _expect(self.w_s_name, w_s, (n, g), None, "compressed-tensors layout [N, K/group_size]")
        if w_s.dtype not in (torch.bfloat16, torch.float16, torch.float32):
            raise ValueError(f"{self.w_s_name}.dtype: expected a float dtype, got {w_s.dtype}")
        codes = _unpack_int4(w_q.data)  # [N, K] unsigned codes 0..15, int8
        if w_g is not None:
            codes = codes[:, self._sort_by_group(layer, w_g.data, g)]
        if w_zp is None:
            codes = codes - 8  # uint4b8 stores q + 8; zentorch's zero-point-free path wants signed q
        packed = gate.op("zentorch_woq_repack_weight")(codes.contiguous())
        packed = weight_cache.place(packed)
        self.replace_parameter(layer, self.w_q_name, packed)  # [N, K/8]; passed to the op as .t()
        weight_cache.claim(getattr(layer, self.w_q_name))
        # fp32 scales: exact for any stored scale dtype, and no slower than bf16 here
        self.replace_parameter(layer, self.w_s_name, w_s.data.float().t().contiguous())  # [G, N]
        if w_zp is not None:
            _expect(self.w_zp_name, w_zp, (n // 8, g), torch.int32, "compressed-tensors layout, packed along N")
            # packed along N: the transposed words [G, N/8] unpack along their last dim to [G, N]
            zp = _unpack_int4(w_zp.data.t().contiguous())
            self.replace_parameter(layer, self.w_zp_name, zp.contiguous())  # [G, N] int8

    def _sort_by_group(self, layer: torch.nn.Module, g_idx: torch.Tensor, groups: int) -> torch.Tensor:
        """Channel order with the groups contiguous (group 0's channels first ...); kept on the layer
        for the per-call gather of x. Each group must hold exactly group_size channels."""
        c = self.config
        gi = g_idx.long()
        if tuple(gi.shape) != (c.K,) or (gi.numel() and (int(gi.min()) < 0 or int(gi.max()) >= groups)):
            raise ValueError(f"{self.w_gidx_name}: expected [{c.K}] group indices in [0, {groups}), "
                             f"got shape {list(gi.shape)}")
        if not torch.equal(torch.bincount(gi, minlength=groups), torch.full((groups,), c.K // groups, device=gi.device)):
            raise ValueError(f"{self.w_gidx_name}: every group must hold exactly {c.K // groups} channels")
        perm = torch.argsort(gi, stable=True)
        layer.register_buffer("qlinear_zentorch_perm", perm, persistent=False)
        return perm

    # ---- GEMM ----------------------------------------------------------------------------------
    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n, k, g = c.N, c.K, self._groups()
        w_q, w_s, w_zp, _ = self._get_weight_params(layer)
        # zentorch checks none of this and returns NaN/garbage for wrong scale shapes: check here
        _expect(self.w_q_name, w_q, (n, k // 8), torch.int32, "after process_weights_after_loading")
        _expect(self.w_s_name, w_s, (g, n), torch.float32, "[G, N] after process_weights_after_loading", contiguous=True)
        if w_zp is not None:
            _expect(self.w_zp_name, w_zp, (g, n), torch.int8, "[G, N] after process_weights_after_loading", contiguous=True)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, k)
        perm = getattr(layer, "qlinear_zentorch_perm", None) if self.w_gidx_name else None
        x2 = x2.index_select(1, perm) if perm is not None else x2.contiguous()
        b = None if bias is None else bias.to(x2.dtype)
        out = gate.op("zentorch_woq_linear")(x2, w_q.t(), w_s, w_zp, b)
        return out.to(c.out_type or x.dtype).reshape(*lead, n)


def _expect(name: str, t: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype | None, what: str,
            contiguous: bool = False) -> None:
    if t is None:
        raise ValueError(f"{name}: missing on the layer")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name}.shape: expected {list(shape)} ({what}), got {list(t.shape)}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"{name}.dtype: expected {dtype} ({what}), got {t.dtype}")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{name}: must be contiguous ({what}); zentorch misreads strided scales")


def _unpack_int4(words: torch.Tensor) -> torch.Tensor:
    """int32 [R, C] with 8 nibbles per word (nibble i at bits 4i) -> int8 codes 0..15 [R, 8*C]."""
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=words.device)
    codes = (words.unsqueeze(-1) >> shifts) & 0xF
    return codes.reshape(words.shape[0], -1).to(torch.int8)
