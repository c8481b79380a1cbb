"""Weight-only (wNa16) kernels: tinygemm W4A16 (``_weight_int4pack_mm`` on CUDA,
``_weight_int4pack_mm_for_cpu`` on CPU) and W8A16 (``_weight_int8pack_mm``).

The layer arrives in the compressed-tensors layout (``weight_packed`` int32 [N, K/8] packed along
K, ``weight_scale`` [N, K/G], optional ``weight_zero_point`` int32 [N/8, K/G] packed along N) and
is converted once at load time.

tinygemm dequantizes a 4-bit code q as ``(q - 8) * scale + zero`` with ``scales_and_zeros``
[K/G, N, 2] (checked numerically: CPU error 3e-7 in fp32). So GPTQ ``uint4b8`` (w = (q - 8) * s)
has zero = 0, and ``uint4`` with zero point z (w = (q - z) * s) has zero = (8 - z) * s.
tinygemm takes group sizes 32/64/128/256 only; per-channel (-1) and larger groups that are a
multiple of one of these are run with that group and the scale repeated, which is exact.
"""

from __future__ import annotations

import torch

from qlinear.formats.int_pack import unpack_along
from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types

from .common import PRIO_CPU, PRIO_CUDA_TINYGEMM, as_2d, gate_cpu, gate_cuda, out_dtype

TINYGEMM_GROUPS = (256, 128, 64, 32)


def tinygemm_group(c) -> int | None:
    """The tinygemm group size that runs config ``c`` exactly, or None."""
    g = c.effective_group_size
    return next((t for t in TINYGEMM_GROUPS if g % t == 0), None)


def _common_mp_checks(c, types) -> str | None:
    if c.weight_type not in types:
        return f"weight_type {c.weight_type.name} is not one of {[t.name for t in types]}"
    if c.has_g_idx:
        return "act-order (g_idx) is not supported: tinygemm/int8pack have no input-channel permutation"
    if not c.is_k_full:
        return "row-parallel slice of an act-order layer (is_k_full False) is not supported"
    return None


def _codes_and_scales(kernel, layer):
    """Unpack the compressed-tensors params -> (codes int32 [N, K], scales [N, Gs], zero points int32 [N, Gs] | None)."""
    c = kernel.config
    wq, ws, wzp, _ = kernel._get_weight_params(layer)
    n, k = c.N, c.K
    if tuple(wq.shape) != (n, k // c.pack_factor) or wq.dtype != torch.int32:
        raise ValueError(f"{kernel.w_q_name}: expected int32 [N={n}, K/{c.pack_factor}={k // c.pack_factor}], got {wq.dtype} {tuple(wq.shape)}")
    ngroups = k // c.effective_group_size
    if tuple(ws.shape) != (n, ngroups):
        raise ValueError(f"{kernel.w_s_name}: expected [N={n}, K/G={ngroups}], got {tuple(ws.shape)}")
    codes = unpack_along(wq.data, c.bits, 1)
    zp = None
    if c.zero_points:
        if wzp is None or tuple(wzp.shape) != (n // c.pack_factor, ngroups):
            raise ValueError(f"{kernel.w_zp_name}: expected int32 [N/{c.pack_factor}, {ngroups}], got "
                             f"{None if wzp is None else tuple(wzp.shape)}")
        zp = unpack_along(wzp.data, c.bits, 0)[:n]
    return codes, ws.data, zp


def cuda_int4pack_input(codes: torch.Tensor) -> torch.Tensor:
    """int32 codes [N, K] (0..15) -> the uint8 [N, K/2] that CUDA ``_convert_weight_to_int4pack``
    takes since torch 2.5: k = 2i in the HIGH nibble, k = 2i + 1 in the low one (int4mm.cu packs
    ``v[0]H`` as element 0). Note: the opposite nibble order of compressed-tensors FP4/AWQ bytes."""
    return ((codes[:, 0::2] << 4) | codes[:, 1::2]).to(torch.uint8).contiguous()


def _tinygemm_scales_and_zeros(c, scales, zp, tg: int, dtype) -> torch.Tensor:
    """[N, K/G] scales (+ zero points) -> tinygemm's [K/tg, N, 2] (scale, zero offset) in ``dtype``."""
    rep = c.effective_group_size // tg
    s = scales.float()
    if zp is None:  # uint4b8: (q - 8) * s, zero offset 0
        z = torch.zeros_like(s)
    else:  # uint4 + zp: (q - zp) * s = (q - 8) * s + (8 - zp) * s
        z = (8 - zp.float()) * s
    s = s.repeat_interleave(rep, 1).t()
    z = z.repeat_interleave(rep, 1).t()
    return torch.stack([s, z], -1).to(dtype).contiguous()


class _TorchW4A16(MPLinearKernel):
    backend = "torch"
    quantizes_activation = False
    batch_invariant = False

    @classmethod
    def _check(cls, c) -> str | None:
        why = _common_mp_checks(c, (scalar_types.uint4b8, scalar_types.uint4))
        if why:
            return why
        if tinygemm_group(c) is None:
            return f"group size {c.group_size} (effective {c.effective_group_size}) is not a multiple of 32; tinygemm takes 32/64/128/256"
        return None

    def process_weights_after_loading(self, layer):
        c = self.config
        codes, scales, zp = _codes_and_scales(self, layer)
        self.tg = tinygemm_group(c)
        dev = codes.device
        packed = self._pack(codes)
        sz = _tinygemm_scales_and_zeros(c, scales, zp, self.tg, self._sz_dtype())
        self.replace_parameter(layer, self.w_q_name, packed)
        self.replace_parameter(layer, self.w_s_name, sz)
        if self.w_zp_name is not None:  # folded into the zero offsets
            self.replace_parameter(layer, self.w_zp_name, torch.empty(0, dtype=torch.int32, device=dev))

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        lead = x.shape[:-1]
        x2 = as_2d(x)
        out = self._mm(x2, getattr(layer, self.w_q_name), getattr(layer, self.w_s_name))
        return _epilogue(out, bias, c, x, lead)


class TorchCpuW4A16LinearKernel(_TorchW4A16):
    """CPU tinygemm: ``_weight_int4pack_mm_for_cpu`` (bf16 / fp16 / fp32 activations)."""

    priority = PRIO_CPU

    @classmethod
    def is_supported(cls, platform=None):
        return gate_cpu(platform, "_weight_int4pack_mm_for_cpu", "_convert_weight_to_int4pack_for_cpu")

    @classmethod
    def can_implement(cls, c):
        why = cls._check(c)
        if why:
            return False, why
        if c.N % 16:
            return False, f"N={c.N} must be a multiple of 16 (_convert_weight_to_int4pack_for_cpu)"
        return True, None

    def _sz_dtype(self):
        return self.config.act_type

    def _pack(self, codes):
        # the CPU op takes the plain [N, K] int32 codes 0..15; inner_k_tiles does not change its layout
        return torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.contiguous(), 2)

    def _mm(self, x2, w, sz):
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x2, w, self.tg, sz)


class TorchCudaW4A16LinearKernel(_TorchW4A16):
    """CUDA tinygemm ``_weight_int4pack_mm`` (bf16 only; cc>=80)."""

    priority = PRIO_CUDA_TINYGEMM
    min_capability = 80

    @classmethod
    def is_supported(cls, platform=None):
        return gate_cuda(platform, cls.min_capability, "_weight_int4pack_mm", "_convert_weight_to_int4pack")

    @classmethod
    def can_implement(cls, c):
        why = cls._check(c)
        if why:
            return False, why
        if c.act_type != torch.bfloat16:
            return False, f"CUDA tinygemm takes bfloat16 activations only, layer has {c.act_type}"
        if c.out_type not in (None, torch.bfloat16):
            return False, f"CUDA tinygemm outputs bfloat16, layer wants {c.out_type}"
        if c.N % 8:
            return False, f"N={c.N} must be a multiple of 8 (tinygemm n-tile)"
        if c.K % 32:
            return False, f"K={c.K} must be a multiple of 32 (2 inner k-tiles of 16)"
        return True, None

    def _sz_dtype(self):
        return torch.bfloat16

    def _pack(self, codes):
        k = codes.shape[1]
        inner = next(t for t in (8, 4, 2) if k % (t * 16) == 0)
        # torch >= 2.5 (2.11 on the H100): uint8 [N, K/2], element 2i in the HIGH nibble
        # (int4mm.cu: "v[0]H" is k=0); older torch took the int32 [N, K] codes.
        u8 = cuda_int4pack_input(codes)
        try:
            return torch.ops.aten._convert_weight_to_int4pack(u8, inner)
        except RuntimeError as e:
            if "kByte" not in str(e) and "uint8" not in str(e).lower() and "Byte" not in str(e):
                raise
            return torch.ops.aten._convert_weight_to_int4pack(codes.contiguous(), inner)

    def _mm(self, x2, w, sz):
        return torch.ops.aten._weight_int4pack_mm(x2, w, self.tg, sz)


# ---- W8A16 ---------------------------------------------------------------------------------------
class _TorchW8A16(MPLinearKernel):
    """``_weight_int8pack_mm(x, w int8 [N, K], scales [N])``: one scale per output channel, no zero
    point, so GPTQ ``uint8b128`` per channel: w = (q - 128) * s with q - 128 stored as int8."""

    backend = "torch"
    quantizes_activation = False

    @classmethod
    def can_implement(cls, c):
        why = _common_mp_checks(c, (scalar_types.uint8b128,))
        if why:
            return False, why
        if c.group_size not in (-1, c.K):
            return False, f"per-channel scales only (group_size -1), got group_size {c.group_size}"
        return True, None

    def process_weights_after_loading(self, layer):
        c = self.config
        codes, scales, _ = _codes_and_scales(self, layer)
        w8 = (codes - 128).to(torch.int8).contiguous()
        self.replace_parameter(layer, self.w_q_name, w8)
        self.replace_parameter(layer, self.w_s_name, scales.reshape(-1).to(c.act_type).contiguous())

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        lead = x.shape[:-1]
        x2 = as_2d(x)
        out = torch.ops.aten._weight_int8pack_mm(x2, getattr(layer, self.w_q_name), getattr(layer, self.w_s_name))
        return _epilogue(out, bias, c, x, lead)


class TorchCpuW8A16LinearKernel(_TorchW8A16):
    """CPU ``_weight_int8pack_mm`` (bf16 / fp16 / fp32 activations)."""

    priority = PRIO_CPU

    @classmethod
    def is_supported(cls, platform=None):
        return gate_cpu(platform, "_weight_int8pack_mm")


class TorchCudaW8A16LinearKernel(_TorchW8A16):
    """CUDA ``_weight_int8pack_mm``: torch's CUDA version is a simple per-output dot-product kernel
    (no tensor cores), so it ranks just above emulation, below every real GPU W8A16 kernel."""

    priority = 5
    min_capability = 80

    @classmethod
    def is_supported(cls, platform=None):
        ok, why = gate_cuda(platform, cls.min_capability, "_weight_int8pack_mm")
        if not ok:
            return ok, why
        from qlinear.platform import resolve_platform

        if not resolve_platform(platform).simulated and not _cuda_int8pack_works():
            return False, f"torch {torch.__version__} has no CUDA kernel for _weight_int8pack_mm"
        return True, "slow: torch's CUDA _weight_int8pack_mm is a naive dot-product kernel"


_INT8PACK_CUDA: list = []


def _cuda_int8pack_works() -> bool:
    """Probe once with a tiny call: the CUDA kernel only exists in some torch builds."""
    if not _INT8PACK_CUDA:
        try:
            x = torch.ones(2, 32, dtype=torch.bfloat16, device="cuda")
            torch.ops.aten._weight_int8pack_mm(x, torch.ones(8, 32, dtype=torch.int8, device="cuda"),
                                               torch.ones(8, dtype=torch.bfloat16, device="cuda"))
            _INT8PACK_CUDA.append(True)
        except Exception:  # noqa: BLE001
            _INT8PACK_CUDA.append(False)
    return _INT8PACK_CUDA[0]


def _epilogue(out, bias, c, x, lead):
    """Bias, the layer's output dtype, and the caller's leading dimensions."""
    if bias is not None:
        out = out + bias
    dt = out_dtype(c, x)
    if out.dtype != dt:
        out = out.to(dt)
    return out.reshape(*lead, c.N)
