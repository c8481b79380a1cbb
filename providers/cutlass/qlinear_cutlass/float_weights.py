"""Float weight codes on the CUTLASS mixed-input GEMM, weight-only (16-bit activations) on Hopper tensor
cores: ``CutlassNvFp4WeightOnlyLinearKernel`` (NVFP4: E2M1, E4M3 scales per 16, fp32 global scale),
``CutlassMxFp4WeightOnlyLinearKernel`` (MXFP4: E2M1, E8M0 scales per 32) and
``CutlassMxfp8WeightOnlyLinearKernel`` (MXFP8: E4M3, E8M0 scales per 32).

The W4A16 / W8A16 GEMM (``csrc/w4a16.cuh``, the same TMA warp-specialized mainloop, tiles and
stream-K) on float codes: ``csrc/mixed_input_float.cuh`` hands CUTLASS one packet of group scales per
(weight row, 64-deep K tile), 4 for groups of 16, 2 for groups of 32, and decodes each 16-deep k-block
with its group's scale. At load the codes are re-laid into the integer codes' order of their width as
they are, the group scales (E4M3 / E8M0, exact in 16 bits) stored times a power of two
(``code_scales``: the codes' bits are placed into the 16-bit type without arithmetic, which leaves
2^-bias out), and the fp32 epilogue multiplies by that power of two back (and NVFP4's 1 / global
scale). No dequantized weight is ever written. Tensor cores make it the formats' kernel from M ~ 32
up; at M <= 16 marlin's decode kernels read the same bytes with no 16-row token tile (a measured table
decides per layer and regime).

Like every weight-only float kernel here it does not quantize the activation
(``quantizes_activation = False``: the conformance kit compares against the weight-only reference).
Refused with a reason: MX formats with float16 activations (E8M0 scales do not fit), N not a multiple
of 16, K not a multiple of 64 (the K tile), an output dtype other than the activation's.
"""

from __future__ import annotations

import torch

from qlinear import kernel as K
from qlinear.families import act_dtype, out_dtype
from qlinear.formats.codes import code_scales, mx_weight_scales, unpack_fp4
from qlinear.platform import cuda_has_pdl, cuda_sm_count
from qlinear.streams import split_k_workspace

from . import configs
from .gates import CutlassKernelMixin
from .w4a16_layout import K_TILE, W8A16_ATOM, sub_scale_table, weight_fp4

ACT_DTYPES = (torch.bfloat16, torch.float16)


class _CutlassFloatWeights(CutlassKernelMixin):
    """Mixin: re-lay float codes and group scales once; run the extension's GEMM with the group and alpha."""

    priority = 14  # below marlin's weight-only float kernels (15) until a measured table decides per M
    quantizes_activation = False
    notes = "JIT-compiles its CUDA extension (CUTLASS mixed-input, sm_90a) when the first layer loads"
    GROUP = 16
    BITS = 4  # E2M1; 8: E4M3
    EXTENSION = "fp4"  # build.EXTENSIONS "<EXTENSION>-<bf16|fp16>", whose GEMM is "<EXTENSION>_mm"
    table_version = 1

    @classmethod
    def can_implement(cls, c):
        dt = act_dtype(c)
        if dt not in ACT_DTYPES:
            return False, f"activation dtype {dt} is not bfloat16/float16"
        od = out_dtype(c)
        if od is not None and od != dt:
            return False, f"out dtype {od} differs from the activation dtype (the epilogue writes {dt})"
        n, k = c.weight_shape
        if n % 16:
            return False, f"N={n} must be a multiple of 16 (the weight reorder atom and 16-byte output rows)"
        if k % K_TILE:
            return False, f"K={k} must be a multiple of {K_TILE} (the GEMM's K tile)"
        return True, None

    def _install(self, layer, codes: torch.Tensor, s32: torch.Tensor, factor: float) -> None:
        """codes [N, K] (uint8 bit patterns: E2M1 0..15 or E4M3), s32 [N, K/GROUP] fp32 group scales, factor:
        an fp32 factor on the sums (NVFP4's 1 / global scale, else 1)."""
        from .build import load

        dt = act_dtype(self.config)
        n, k = self.config.weight_shape
        if tuple(codes.shape) != (n, k):
            raise ValueError(f"weight.shape: unpacks to {tuple(codes.shape)}, expected ({n}, {k})")
        if tuple(s32.shape) != (n, k // self.GROUP):
            raise ValueError(f"weight_scale.shape: expected ({n}, {k // self.GROUP}), got {tuple(s32.shape)}")
        stored, power = code_scales(s32.float(), dt, self.BITS)
        self.replace_parameter(layer, "weight", weight_fp4(codes) if self.BITS == 4 else W8A16_ATOM.reorder(codes))
        self.replace_parameter(layer, "weight_scale", sub_scale_table(stored, self.GROUP, dt))
        self._alpha = float(factor) * power
        ext = load(f"{self.EXTENSION}-{'bf16' if dt == torch.bfloat16 else 'fp16'}")  # build here, never in apply
        self._mm = getattr(ext, f"{self.EXTENSION}_mm")
        # the decode kernel up to M = _decode_max_m (0: never), settled here as N and K are fixed
        self._decode = getattr(ext, f"{self.EXTENSION}_decode", None)
        takes = self._decode is not None and configs.float_decode_applies(1, n, k, self.BITS)
        self._decode_max_m = configs.float_decode_max_m(n, k, self.BITS) if takes else 0
        dev = layer.weight.device
        self._pdl = bool(configs.PDL) and dev.type == "cuda" and cuda_has_pdl(dev)
        self._sm_count = cuda_sm_count(dev) if dev.type == "cuda" else 1

    def run_decode(self, out, x2, layer, bias, splits: int = 0, warps: int = 0, pdl: bool | None = None, rows: int = 0,
                   cluster: bool = True) -> None:
        """out = the decode kernel's result for x2 (M <= 16 rows), with its launch knobs pinned when given
        (``splits`` 0 = one wave's worth, ``warps`` 0 / 4 / 8, ``rows`` 0 / 1 / 2 eight-row blocks of x a
        block, ``cluster`` False = K slices always added through the workspace; sweeps and tests), on the
        split-K workspace of x2's stream."""
        n, k = self.config.weight_shape
        m = x2.shape[0]
        if not configs.float_decode_applies(m, n, k, self.BITS):
            raise ValueError(f"x: the decode kernel takes 1 <= M <= 16, N a multiple of {configs.DECODE_TILE_N} and K of "
                             f"{configs.decode_chunk_k(self.BITS)}; got M={m} N={n} K={k}")
        self._launch_decode(out, x2, layer, bias, splits, warps, self._pdl if pdl is None else pdl, rows, cluster)

    def _launch_decode(self, out, x2, layer, bias, splits=0, warps=0, pdl=None, rows=0, cluster=True) -> None:
        """apply's path (the shape settled at load by _decode_max_m): workspace, then the binding."""
        n, k = self.config.weight_shape
        m = x2.shape[0]
        planes = configs.w4a16_decode_planes(m, n, k, self._sm_count, self.BITS)
        ws, counters = split_k_workspace(x2.device, planes * m * n, 2 * n // configs.DECODE_TILE_N)
        self._decode(out, x2, layer.weight, layer.weight_scale, bias, ws, counters, self.GROUP, splits, warps,
                     self._pdl if pdl is None else pdl, rows, cluster, self._alpha)

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        dt = act_dtype(c)
        n, k = c.weight_shape
        if x.dtype != dt:
            raise ValueError(f"x.dtype: expected {dt} (the layer's activation dtype), got {x.dtype}")
        x2 = x.reshape(-1, k)
        m = x2.shape[0]
        out = torch.empty((m, n), dtype=dt, device=x.device)
        if not m:
            return out.reshape(*x.shape[:-1], n)
        if x2.stride(-1) != 1 or x2.stride(0) % 8 or x2.data_ptr() % 16:
            x2 = x2.contiguous() if x2.stride(-1) != 1 or x2.stride(0) % 8 else x2.clone()
        if bias is not None:
            bias = bias.to(dt).contiguous()
        if m <= self._decode_max_m:
            self._launch_decode(out, x2, layer, bias)
            return out.reshape(*x.shape[:-1], n)
        tile = configs.w4a16_forced()
        self._mm(out, x2, layer.weight, layer.weight_scale, bias, self.GROUP,
                 configs.w4a16_tile_for(m, n) if tile is None else tile, self._alpha)
        return out.reshape(*x.shape[:-1], n)


class CutlassNvFp4WeightOnlyLinearKernel(_CutlassFloatWeights, K.NvFp4LinearKernel):
    """NVFP4 weights (E2M1, E4M3 scales per 16, fp32 global scale), 16-bit activations (W4A16)."""

    GROUP = 16

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w = layer.weight.data
        if w.dtype != torch.uint8 or tuple(w.shape) != (n, k // 2):
            raise ValueError(f"weight: expected uint8 [{n}, {k // 2}] (two E2M1 codes per byte), got {w.dtype} {tuple(w.shape)}")
        gs = layer.weight_global_scale.data.float().reshape(())
        if not bool(torch.isfinite(gs)) or float(gs) == 0.0:
            raise ValueError(f"weight_global_scale: expected a finite non-zero scale, got {float(gs)}")
        self._install(layer, unpack_fp4(w), layer.weight_scale.data.float(), 1.0 / float(gs))


class _CutlassMx(_CutlassFloatWeights):
    GROUP = 32

    @classmethod
    def can_implement(cls, c):
        if act_dtype(c) == torch.float16:
            return False, "float16 activations cannot hold E8M0 scales (2^-127..2^127) exactly; this kernel needs bfloat16"
        return super().can_implement(c)

    def _mx_install(self, layer, codes: torch.Tensor) -> None:
        n, k = self.config.weight_shape
        self._install(layer, codes, mx_weight_scales(layer.weight_scale.data, n, k), 1.0)


class CutlassMxFp4WeightOnlyLinearKernel(_CutlassMx, K.MxFp4LinearKernel):
    """MXFP4 weights (E2M1, E8M0 scales per 32), bfloat16 activations (W4A16); float16 activations are
    refused with a reason (the E8M0 scale range does not fit float16)."""

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w = layer.weight.data
        if w.dtype != torch.uint8 or tuple(w.shape) != (n, k // 2):
            raise ValueError(f"weight: expected uint8 [{n}, {k // 2}] (two E2M1 codes per byte), got {w.dtype} {tuple(w.shape)}")
        self._mx_install(layer, unpack_fp4(w))


class CutlassMxfp8WeightOnlyLinearKernel(_CutlassMx, K.Mxfp8LinearKernel):
    """MXFP8 weights (E4M3, E8M0 scales per 32), bfloat16 activations (W8A16), on the W8A16 GEMM's 8-bit
    order; float16 activations are refused with a reason."""

    BITS = 8
    EXTENSION = "mxfp8"

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w = layer.weight.data
        if w.element_size() != 1 or tuple(w.shape) != (n, k):
            raise ValueError(f"weight: expected E4M3 [{n}, {k}], got {w.dtype} {tuple(w.shape)}")
        codes = w.contiguous().view(torch.uint8)
        if bool(((codes & 0x7F) == 0x7F).any()):  # the bits would be placed as a finite value, not NaN
            raise ValueError("weight: E4M3 NaN code (0x7F / 0xFF) in the weight")
        self._mx_install(layer, codes)


KERNELS = [CutlassNvFp4WeightOnlyLinearKernel, CutlassMxFp4WeightOnlyLinearKernel, CutlassMxfp8WeightOnlyLinearKernel]
