"""W4A16 / W8A16 (wNa16) on AMX: codes expanded to bf16 tiles, scales applied per K group.

The layer arrives in the compressed-tensors layout (``weight_packed`` int32 [N, K/pf] packed along
K, ``weight_scale`` [N, K/G], optional ``weight_zero_point`` [N/pf, K/G] packed along N, optional
``weight_g_idx`` [K]) and is re-laid once:

* codes -> the bf16 tile layout (``pack.pack_int4`` / ``pack.pack_bytes``); the kernel turns a code
  q into the exact bf16 integer q - bias (bias 8 or 128) with a table lookup, so the tiles multiply
  small exact integers and the fp32 result of one K group is scaled afterwards: out += s * (acc - (z
  - bias) * sum(x over the group)). GPTQ (no zero point) skips the zero term.
* act-order: K is sorted by ``g_idx`` once (weights) and the activation's columns are gathered in
  the same order per call, so every group is contiguous again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qlinear.formats.int_pack import unpack_along
from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types

from . import hugepages, pack
from .common import PRIO, CpuKernelMixin, as_2d, bias_f32, new_out, out_dtype

W_INT4, W_FP8, W_INT8 = 0, 1, 2
# rows up to which int4 weights take the AVX512-BF16 vector path instead of AMX tiles (measured on a
# 2-core Sapphire Rapids VM: the vector path ties AMX at M = 1 and loses from M = 2)
INT4_VEC_MAX_M = 1
TYPES = {scalar_types.uint4b8: (W_INT4, 8), scalar_types.uint4: (W_INT4, 8),
         scalar_types.uint8b128: (W_INT8, 128), scalar_types.uint8: (W_INT8, 128)}


class CpuAmxWNA16LinearKernel(CpuKernelMixin, MPLinearKernel):
    """W4A16 / W8A16 (GPTQ ``uint4b8`` / ``uint8b128``, AWQ-style ``uint4`` / ``uint8`` with zero
    points), groups that are multiples of 32 or per channel, act-order; bf16 or fp16 activations
    (fp16 is rounded to bf16 for the tiles)."""

    priority = PRIO
    quantizes_activation = False
    batch_invariant = False

    @classmethod
    def can_implement(cls, c):
        why = layer_reason(c, TYPES)
        return why is None, why

    def process_weights_after_loading(self, layer):
        c = self.config
        ext = self.ext()  # build (or load) the extension now, never in apply
        codes, ws, zp = checked_codes(self, layer)
        k = c.K
        g = c.effective_group_size
        kind, bias = TYPES[c.weight_type]
        self.kind = kind
        self.k_pad = pack.round_up(k, 32)
        # per channel: one scale for all of K, applied per sub-group (pack.split_group)
        self.group = pack.split_group(self.k_pad) if g == k else g
        reps = self.k_pad // self.group if g == k else 1
        if kind == W_INT4:
            wpack = pack.pack_int4(codes, self.k_pad)
        else:
            wpack = pack.pack_bytes((codes - bias).to(torch.int8), self.k_pad)
        store_packed(self, layer, wpack, ws.data, zp, reps, zero_offset=bias)
        self._ext = ext

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        lead = x.shape[:-1]
        x2 = as_2d(x)
        if x2.shape[0] == 0:  # the C++ kernels take M >= 1
            return new_out(0, c.N, out_dtype(c, x)).reshape(*lead, c.N)
        if x2.dtype != torch.bfloat16:
            x2 = x2.to(torch.bfloat16)
        if self.perm is not None:
            x2 = x2.index_select(1, self.perm)
        if self.k_pad != c.K:
            x2 = F.pad(x2, (0, self.k_pad - c.K))
        out = new_out(x2.shape[0], c.N, out_dtype(c, x))
        zc = getattr(layer, self.w_zp_name) if c.zero_points else None
        self._ext.gemm_dq(x2, getattr(layer, self.w_q_name), self.kind, self.group, getattr(layer, self.w_s_name),
                          zc, None, None, bias_f32(bias), out, INT4_VEC_MAX_M if self.kind == W_INT4 else 0)
        return out.reshape(*lead, c.N)


def layer_reason(c, types) -> str | None:
    """Why the CPU integer-weight kernels (W4A16 / W8A16 here, W4A8 in ``w4a8``) cannot take layer
    ``c`` with weight types ``types``, or None."""
    if c.weight_type not in types:
        return f"weight_type {c.weight_type.name} is not one of {[t.name for t in types]}"
    if c.zero_points != (c.weight_type in (scalar_types.uint4, scalar_types.uint8)):
        return f"weight_type {c.weight_type.name} with zero_points={c.zero_points} is not a GPTQ/AWQ format"
    if c.act_type not in (torch.bfloat16, torch.float16):
        return f"act_type {c.act_type} is not bf16/fp16"
    if c.has_g_idx and not c.is_k_full:
        return "row-parallel slice of an act-order layer (is_k_full False) is not supported"
    g = c.effective_group_size
    if g != c.K and g % 32:
        return f"group size {c.group_size} must be a multiple of 32 (one tile is 32 K deep) or per channel"
    return None


def store_packed(kernel: MPLinearKernel, layer, wpack: torch.Tensor, ws: torch.Tensor, zp: torch.Tensor | None,
                 reps: int, zero_offset: float = 0.0) -> None:
    """Replace the layer's parameters with what the C++ kernels read: the packed codes, the scales
    [N, G] and the zero-point codes minus ``zero_offset`` (an empty tensor without them) as per-N-block
    tables (``pack.block_scales``), each group's row repeated ``reps`` times for its sub-groups."""
    n_pad = pack.round_up(kernel.config.N, pack.NB)

    def table(t_ng: torch.Tensor) -> torch.Tensor:
        return pack.block_scales(pack.repeat_groups(t_ng.float().t(), reps), n_pad)

    kernel.replace_parameter(layer, kernel.w_q_name, hugepages.place(wpack))
    kernel.replace_parameter(layer, kernel.w_s_name, table(ws))
    if kernel.w_zp_name is not None:
        kernel.replace_parameter(layer, kernel.w_zp_name, table(zp.float() - zero_offset) if zp is not None else torch.empty(0))


def checked_codes(kernel: MPLinearKernel, layer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The layer's codes [N, K] (K sorted by ``g_idx`` for act-order; ``kernel.perm`` is set to that
    order or None), its scales [N, K/G] and its zero-point codes [N, K/G] (None without), each
    checked against the config with an error naming the parameter."""
    c = kernel.config
    n, k = c.N, c.K
    wq, ws, wzp, gidx = kernel._get_weight_params(layer)
    if tuple(wq.shape) != (n, k // c.pack_factor) or wq.dtype != torch.int32:
        raise ValueError(f"{kernel.w_q_name}: expected int32 [N={n}, K/{c.pack_factor}={k // c.pack_factor}], "
                         f"got {wq.dtype} {tuple(wq.shape)}")
    g = c.effective_group_size
    ngroups = k // g
    if tuple(ws.shape) != (n, ngroups):
        raise ValueError(f"{kernel.w_s_name}: expected [N={n}, K/G={ngroups}], got {tuple(ws.shape)}")
    codes = unpack_along(wq.data, c.bits, 1)
    kernel.perm = None
    if c.has_g_idx:
        gi = gidx.data.long() if gidx is not None else None
        if gi is None or gi.shape != (k,):
            raise ValueError(f"{kernel.w_gidx_name}: expected [K={k}], got {None if gi is None else tuple(gi.shape)}")
        if int(gi.min()) < 0 or int(gi.max()) >= ngroups or not torch.equal(
                torch.bincount(gi, minlength=ngroups), torch.full((ngroups,), g)):
            raise ValueError(f"{kernel.w_gidx_name}: every group in [0, {ngroups}) must hold exactly {g} channels")
        perm = torch.argsort(gi, stable=True)
        codes = codes[:, perm]
        kernel.perm = perm.contiguous()
    zp = None
    if c.zero_points:
        if wzp is None or tuple(wzp.shape) != (-(-n // c.pack_factor), ngroups):
            raise ValueError(f"{kernel.w_zp_name}: expected int32 [N/{c.pack_factor}, {ngroups}], got "
                             f"{None if wzp is None else tuple(wzp.shape)}")
        zp = unpack_along(wzp.data, c.bits, 0)[:n]
    return codes, ws, zp
