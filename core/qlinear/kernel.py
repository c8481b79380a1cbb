"""Kernel ABCs: one generic ``LinearKernel`` and the family ABCs (vLLM's names where vLLM has one).

A kernel class answers two questions without touching tensors — ``is_supported(platform)`` (can it
run on this machine: library present, device, capability) and ``can_implement(config)`` (can it do
this layer) — each as ``(ok, reason)``. An instance then re-lays the loaded weights once
(``process_weights_after_loading``) and runs the GEMM (``apply_weights``). Heavy libraries are
imported in ``is_supported`` / at first use, never at module import, so discovery stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import torch

from .config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, LayerConfig, MPLinearLayerConfig
from .config import MxFp4LinearLayerConfig, Mxfp8LinearLayerConfig, NvFp4LinearLayerConfig, W4A8LinearLayerConfig
from .families import act_dtype, family_of

if TYPE_CHECKING:
    from .platform import Platform

ConfigT = TypeVar("ConfigT", bound=LayerConfig)
Verdict = tuple[bool, "str | None"]


class LinearKernel(ABC, Generic[ConfigT]):
    family: ClassVar[str] = ""
    provider: ClassVar[str] = "local"  # set from the entry point name when a provider registers it
    priority: ClassVar[int] = 0  # higher is tried first; emulation is 0
    backend: ClassVar[str] = ""  # the ``linear_backend`` word that selects it
    batch_invariant: ClassVar[bool] = False  # a row's result never depends on the batch around it
    quantizes_activation: ClassVar[bool] = True  # False: weight-only (W4A16-style) emulation of the format
    # Bump when a change to how the kernel runs makes its measured table rows stale: ``qlinear tune``
    # stamps each row with the version it timed (``kernel_version``, absent = 0), and selection
    # ignores rows of another version, so an old row cannot pick (or lose) this kernel until it is
    # re-timed. (The H200 FP8 rows of the torch kernels dated from when their activation quantization
    # ran compiled; eager, they were 1.5-2.4x slower and still chosen, costing the FP8 model 40%.)
    table_version: ClassVar[int] = 0
    min_capability: ClassVar[int | None] = None  # CUDA cc (major*10+minor) where that gates it
    notes: ClassVar[str | None] = None  # a caveat doctor shows when usable ("JIT-compiles on first use")
    # Kernels with the same non-None word promise that process_weights_after_loading leaves the same
    # parameters, so one re-laid layer serves each of them: the layer may then switch kernels per M
    # at call time (a measured table decides) without a second weight copy. Such a kernel builds its
    # own per-instance state for a layer another kernel of the word re-laid in ``attach_shared``.
    weight_layout: ClassVar[str | None] = None

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    # ---- names ---------------------------------------------------------------------------
    @classmethod
    def kernel_name(cls) -> str:
        return cls.__name__

    @classmethod
    def full_name(cls) -> str:
        return f"{cls.provider}.{cls.__name__}"

    # ---- gates -------------------------------------------------------------------------------
    @classmethod
    def get_min_capability(cls) -> int | None:
        return cls.min_capability

    @classmethod
    def is_supported(cls, platform: "Platform | int | None" = None) -> Verdict:
        """Can this kernel run here? Subclasses check device kind, libraries, capability."""
        return True, None

    @classmethod
    @abstractmethod
    def can_implement(cls, c: ConfigT) -> Verdict:
        """Can this kernel implement layer ``c``? Never touches tensors."""

    @classmethod
    def create(cls, config: ConfigT) -> "LinearKernel":
        """Build an instance with the default layer parameter names (see each family ABC)."""
        return cls(config)

    # ---- work ----------------------------------------------------------------------------
    @abstractmethod
    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        """Re-lay the loaded parameters for this kernel, once, in place."""

    @abstractmethod
    def apply_weights(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., K] -> [..., N]."""

    def attach_shared(self, layer: torch.nn.Module) -> None:
        """Serve ``layer``, already re-laid by another kernel of the same ``weight_layout``: set up
        this instance's own state (cached launch parameters...), never touch the parameters."""

    def handles_non_finite(self, m: int) -> bool:
        """Whether ``apply_weights`` itself turns rows of x holding NaN/inf into NaN rows at M=m where
        the layer's activation quantization would hide them (``saturates_non_finite``): then the
        callers skip ``propagate_non_finite`` (two more launches, as long as the GEMM at decode)."""
        return False

    def apply(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``apply_weights`` behind input checks that name the wrong field (shape, dtype, device)."""
        check_input(self.config, x, bias, device=_layer_device(layer))
        out = self.apply_weights(layer, x, bias)
        if saturates_non_finite(self.config) and x.numel() and not self.handles_non_finite(x.numel() // x.shape[-1]):
            out = propagate_non_finite(x, out)
        return out

    # ---- helpers shared by kernels --------------------------------------------------------
    @staticmethod
    def replace_parameter(layer: torch.nn.Module, name: str, new: torch.Tensor) -> None:
        """Swap ``layer.<name>`` for ``new`` (a frozen Parameter), keeping the param metadata."""
        old = getattr(layer, name, None)
        p = torch.nn.Parameter(new.detach() if isinstance(new, torch.Tensor) else new, requires_grad=False)
        for attr in ("input_dim", "output_dim", "packed_dim", "packed_factor"):
            if old is not None and hasattr(old, attr):
                setattr(p, attr, getattr(old, attr))
        if name in layer._parameters:
            del layer._parameters[name]
        elif hasattr(layer, name):
            delattr(layer, name)
        layer.register_parameter(name, p)

    def __repr__(self) -> str:
        return f"{self.full_name()}({self.config.describe()})"


def _layer_device(layer: torch.nn.Module) -> torch.device | None:
    for p in layer.parameters():
        return p.device
    for b in layer.buffers():
        return b.device
    return None


def saturates_non_finite(c: LayerConfig) -> bool:
    """Would quantizing this layer's activation lose a NaN/inf? With a static scale (INT8 static,
    FP8 per-tensor static, NVFP4's global scale) inf is clamped to the largest code, a finite and
    wrong row; MXFP4's codes drop NaN. Dynamic INT8/FP8 scales turn a non-finite row into NaN by
    themselves, and weight-only (MP) layers never quantize the activation."""
    fam = c.family
    if fam == "int8":
        return bool(getattr(c, "is_static_input_scheme", False))
    if fam == "fp8":
        return bool(c.activation_quant_key.scale.static)
    return fam in ("nvfp4", "mxfp4")


def propagate_non_finite(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Rows whose activation holds NaN/inf come out NaN (for layers where ``saturates_non_finite``),
    in place on ``out``: out += 0 * (the row's sum in fp64), which is 0 for a finite row (no 16- or
    32-bit row overflows fp64) and NaN for a row holding inf or NaN (0 * inf, NaN + anything). Two
    launches, no host sync (CUDA-graph safe): an isfinite / all / masked_fill chain took ~8 and cost
    up to 200 us of eager host time per call. ``apply_weights`` (the unchecked path an engine may
    call) skips it."""
    if not x.dtype.is_floating_point or x.dtype == torch.float8_e4m3fn:  # already quantized by the caller
        return out
    return out.add_(x.sum(dim=-1, keepdim=True, dtype=torch.float64), alpha=0.0)


def expected_act_dtype(c: LayerConfig) -> torch.dtype:
    """The activation dtype layer ``c`` takes (kept for providers; ``qlinear.families.act_dtype``)."""
    return act_dtype(c)


def check_input(c: LayerConfig, x: Any, bias: Any = None, device: torch.device | None = None) -> None:
    """Raise a ValueError that names the field for an activation / bias the layer can't take."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    nk = c.shape_nk
    if nk is not None:
        n, k = nk
        if x.dim() < 1 or x.shape[-1] != k:
            raise ValueError(f"x.shape: last dimension must be K={k}, got {tuple(x.shape)}")
    dt = act_dtype(c)
    # an already-quantized FP8 activation is allowed for FP8 kernels (they skip their quantization)
    if x.dtype != dt and not (x.dtype == torch.float8_e4m3fn and family_of(c).takes_fp8_input):
        raise ValueError(f"x.dtype: layer expects {dt}, got {x.dtype}")
    if device is not None and x.device != device:
        raise ValueError(f"x.device: layer weights are on {device}, x is on {x.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias: expected a torch.Tensor or None, got {type(bias).__name__}")
        if nk is not None and tuple(bias.shape) != (nk[0],):
            raise ValueError(f"bias.shape: expected ({nk[0]},), got {tuple(bias.shape)}")
        if device is not None and bias.device != device:
            raise ValueError(f"bias.device: layer weights are on {device}, bias is on {bias.device}")


# ============================================================================================
# Family ABCs (vLLM names and constructor signatures)
# ============================================================================================
class MPLinearKernel(LinearKernel[MPLinearLayerConfig]):
    """Mixed-precision (wNa16). Default parameter names are compressed-tensors':
    ``weight_packed`` int32 [N, K/pack] packed along K, ``weight_scale`` [N, K/G],
    ``weight_zero_point`` int32 [N/pack, K/G] packed along N, ``weight_g_idx`` int32 [K]."""

    family = "mp"

    def __init__(self, c: MPLinearLayerConfig, w_q_param_name: str, w_s_param_name: str,
                 w_zp_param_name: str | None = None, w_gidx_param_name: str | None = None) -> None:
        super().__init__(c)
        ok, why = self.can_implement(c)
        if not ok:
            raise ValueError(f"{type(self).__name__} cannot implement {c.describe()}: {why}")
        self.w_q_name = w_q_param_name
        self.w_s_name = w_s_param_name
        if c.zero_points and w_zp_param_name is None:
            raise ValueError("w_zp_param_name: config has zero points but no parameter name was given")
        if c.has_g_idx and w_gidx_param_name is None:
            raise ValueError("w_gidx_param_name: config has g_idx but no parameter name was given")
        self.w_zp_name = w_zp_param_name
        self.w_gidx_name = w_gidx_param_name

    @classmethod
    def create(cls, config: MPLinearLayerConfig) -> "MPLinearKernel":
        return cls(config, "weight_packed", "weight_scale",
                   "weight_zero_point" if config.zero_points else None,
                   "weight_g_idx" if config.has_g_idx else None)

    def _get_weight_params(self, layer: torch.nn.Module):
        return (
            getattr(layer, self.w_q_name),
            getattr(layer, self.w_s_name),
            getattr(layer, self.w_zp_name) if self.w_zp_name else None,
            getattr(layer, self.w_gidx_name) if self.w_gidx_name else None,
        )


class _ScaledMMKernel(LinearKernel[ConfigT]):
    DEFAULT_PARAM_NAMES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, c: ConfigT, layer_param_names: tuple[str, ...] | list[str] | None = None) -> None:
        super().__init__(c)
        self.layer_param_names = tuple(layer_param_names or self.DEFAULT_PARAM_NAMES)

    @classmethod
    def create(cls, config):  # type: ignore[override]
        return cls(config, cls.DEFAULT_PARAM_NAMES)


class FP8ScaledMMLinearKernel(_ScaledMMKernel[FP8ScaledMMLinearLayerConfig]):
    """FP8 W8A8. Params: ``weight`` fp8 [K, N] (a transposed view of [N, K]), ``weight_scale``
    (scalar or [N, 1]), optional ``input_scale`` (static), ``input_scale_ub``."""

    family = "fp8"
    DEFAULT_PARAM_NAMES = ("weight", "weight_scale", "input_scale", "input_scale_ub")


class Int8ScaledMMLinearKernel(_ScaledMMKernel[Int8ScaledMMLinearLayerConfig]):
    """INT8 W8A8. Params: ``weight`` int8 [K, N], ``weight_scale`` ([1] or [N, 1]), optional
    ``input_scale``, ``input_zero_point`` (static asymmetric), ``azp_adj`` (column sums of W)."""

    family = "int8"
    DEFAULT_PARAM_NAMES = ("weight", "weight_scale", "input_scale", "input_zero_point", "azp_adj")


class Fp8BlockScaledMMLinearKernel(LinearKernel[FP8ScaledMMLinearLayerConfig]):
    """Block FP8. Params: ``weight`` fp8 [N, K], ``weight_scale_inv`` fp32 [ceil(N/bn), ceil(K/bk)].
    ``apply_input_quant`` False means the kernel takes the 16-bit activation and quantizes inside."""

    family = "fp8_block"
    apply_input_quant: ClassVar[bool] = True

    @staticmethod
    def deepseek_layout_reason(c: FP8ScaledMMLinearLayerConfig) -> str | None:
        """Why ``c`` is not the DeepSeek-V3 layout (128x128 weight blocks, 1x128 activation groups)
        that the block kernels take, or None when it is."""
        if not c.is_block:
            return "not a block-scaled FP8 layer"
        if c.weight_block != (128, 128):
            return f"weight block {c.weight_block} is not 128x128"
        g = c.activation_quant_key.scale.group_shape
        if (g.row, g.col) != (1, 128):
            return f"activation group {g} is not 1x128"
        return None


def relay_block_weight(kernel, layer, weight_shape) -> tuple[str, tuple[int, int]]:
    """The block FP8 kernels' load step (DeepSeek-V3 layout): check the as-loaded weight fp8 [N, K]
    and its scale [ceil(N/128), ceil(K/128)] (``weight_scale_inv``, else ``weight_scale``), and make
    both contiguous (the scale fp32) through ``kernel.replace_parameter``. Returns (the scale's
    parameter name, (N, K)). Pure torch."""
    n, k = weight_shape
    w = layer.weight
    if w.dtype != torch.float8_e4m3fn or tuple(w.shape) != (n, k):
        raise ValueError(f"weight: expected float8_e4m3fn [{n}, {k}], got {w.dtype} {tuple(w.shape)}")
    name = "weight_scale_inv" if getattr(layer, "weight_scale_inv", None) is not None else "weight_scale"
    s = getattr(layer, name, None)
    shape = (-(-n // 128), -(-k // 128))
    if s is None or tuple(s.shape) != shape:
        raise ValueError(f"{name}.shape: expected {shape}, got {None if s is None else tuple(s.shape)}")
    if not w.is_contiguous():
        kernel.replace_parameter(layer, "weight", w.data.contiguous())
    kernel.replace_parameter(layer, name, s.data.to(torch.float32).contiguous())
    return name, (n, k)


class NvFp4LinearKernel(LinearKernel[NvFp4LinearLayerConfig]):
    """NVFP4. Params: ``weight`` uint8 [N, K/2], ``weight_scale`` e4m3 [N, K/16],
    ``weight_global_scale``, ``input_global_scale`` (and ``input_global_scale_inv``), ``alpha``."""

    family = "nvfp4"


class MxFp4LinearKernel(LinearKernel[MxFp4LinearLayerConfig]):
    """MXFP4. Params: ``weight`` uint8 [N, K/2], ``weight_scale`` uint8 (E8M0) [N, K/32]."""

    family = "mxfp4"


class Mxfp8LinearKernel(LinearKernel[Mxfp8LinearLayerConfig]):
    """MXFP8. Params: ``weight`` fp8-e4m3 [N, K], ``weight_scale`` uint8 (E8M0) [N, K/32]."""

    family = "mxfp8"


class W4A8LinearKernel(LinearKernel[W4A8LinearLayerConfig]):
    """W4A8 (int4 weights x FP8 activations). Params (compressed-tensors names): ``weight_packed``
    int32 [N, K/8] (uint4b8 codes q + 8 packed along K), ``weight_scale`` [N, K/G] group scales
    (E4M3, or 16/32-bit floats holding E4M3 values), ``weight_chan_scale`` fp32 [N, 1]."""

    family = "w4a8"


FAMILY_ABCS: dict[str, type[LinearKernel]] = {
    "mp": MPLinearKernel,
    "int8": Int8ScaledMMLinearKernel,
    "fp8": FP8ScaledMMLinearKernel,
    "fp8_block": Fp8BlockScaledMMLinearKernel,
    "nvfp4": NvFp4LinearKernel,
    "mxfp4": MxFp4LinearKernel,
    "mxfp8": Mxfp8LinearKernel,
    "w4a8": W4A8LinearKernel,
}
