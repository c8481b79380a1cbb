"""How a tensor is quantized: its dtype, and the shape and kind of its scales (vLLM's QuantKey)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GroupShape:
    """Rows x columns that share one scale. -1 means "the whole dimension"."""

    row: int
    col: int

    def is_per_tensor(self) -> bool:
        return self.row == -1 and self.col == -1

    def is_per_token(self) -> bool:  # one scale per row of an activation
        return self.row == 1 and self.col == -1

    def is_per_channel(self) -> bool:  # one scale per output channel of a weight
        return self.row == -1 and self.col == 1

    def is_per_group(self) -> bool:
        return self.row == 1 and self.col > 1

    def is_block(self) -> bool:
        return self.row > 1 and self.col > 1

    def __str__(self) -> str:
        names = {(-1, -1): "per-tensor", (1, -1): "per-token", (-1, 1): "per-channel"}
        return names.get((self.row, self.col), f"{self.row}x{self.col}")


GroupShape.PER_TENSOR = GroupShape(-1, -1)  # type: ignore[attr-defined]
GroupShape.PER_TOKEN = GroupShape(1, -1)  # type: ignore[attr-defined]
GroupShape.PER_CHANNEL = GroupShape(-1, 1)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ScaleDesc:
    """A scale: its dtype, static (fixed at load time) or dynamic (computed per call), its grouping."""

    dtype: torch.dtype
    static: bool
    group_shape: GroupShape

    def __str__(self) -> str:
        return f"{'static' if self.static else 'dynamic'} {self.group_shape} {str(self.dtype).removeprefix('torch.')}"


@dataclass(frozen=True)
class QuantKey:
    """A quantized tensor: element dtype, its scale, an optional second-level scale, symmetry."""

    dtype: torch.dtype
    scale: ScaleDesc
    scale2: ScaleDesc | None = None
    symmetric: bool = True

    def __str__(self) -> str:
        s = f"{str(self.dtype).removeprefix('torch.')} ({self.scale}"
        if self.scale2 is not None:
            s += f"; {self.scale2}"
        return s + ("" if self.symmetric else "; asymmetric") + ")"


FP8 = torch.float8_e4m3fn
_F32 = torch.float32
_E8M0 = getattr(torch, "float8_e8m0fnu", torch.uint8)
_FP4 = getattr(torch, "float4_e2m1fn_x2", torch.uint8)

kStaticTensorScale = ScaleDesc(_F32, True, GroupShape.PER_TENSOR)
kDynamicTensorScale = ScaleDesc(_F32, False, GroupShape.PER_TENSOR)
kStaticChannelScale = ScaleDesc(_F32, True, GroupShape.PER_CHANNEL)
kDynamicTokenScale = ScaleDesc(_F32, False, GroupShape.PER_TOKEN)
kDynamic128Scale = ScaleDesc(_F32, False, GroupShape(1, 128))
kStatic128BlockScale = ScaleDesc(_F32, True, GroupShape(128, 128))

# FP8 keys
kFp8StaticTensorSym = QuantKey(FP8, kStaticTensorScale)
kFp8DynamicTensorSym = QuantKey(FP8, kDynamicTensorScale)
kFp8StaticChannelSym = QuantKey(FP8, kStaticChannelScale)
kFp8DynamicTokenSym = QuantKey(FP8, kDynamicTokenScale)
kFp8Dynamic128Sym = QuantKey(FP8, kDynamic128Scale)
kFp8Static128BlockSym = QuantKey(FP8, kStatic128BlockScale)
# INT8 keys
kInt8StaticTensorSym = QuantKey(torch.int8, kStaticTensorScale)
kInt8StaticChannelSym = QuantKey(torch.int8, kStaticChannelScale)
kInt8DynamicTokenSym = QuantKey(torch.int8, kDynamicTokenScale)
kInt8DynamicTokenAsym = QuantKey(torch.int8, kDynamicTokenScale, symmetric=False)
kInt8StaticTensorAsym = QuantKey(torch.int8, kStaticTensorScale, symmetric=False)
# Microscaling / FP4 keys (element dtype, block scale, optional global scale)
kNvfp4Static = QuantKey(_FP4, ScaleDesc(FP8, True, GroupShape(1, 16)), scale2=kStaticTensorScale)
kNvfp4Dynamic = QuantKey(_FP4, ScaleDesc(FP8, False, GroupShape(1, 16)), scale2=kStaticTensorScale)
kMxfp4Static = QuantKey(_FP4, ScaleDesc(_E8M0, True, GroupShape(1, 32)))
kMxfp4Dynamic = QuantKey(_FP4, ScaleDesc(_E8M0, False, GroupShape(1, 32)))
kMxfp8Static = QuantKey(FP8, ScaleDesc(_E8M0, True, GroupShape(1, 32)))
kMxfp8Dynamic = QuantKey(FP8, ScaleDesc(_E8M0, False, GroupShape(1, 32)))
