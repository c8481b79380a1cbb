"""Scalar types of quantized data: the numbers a weight or activation code stands for.

Modelled on vLLM's ``ScalarType`` so engine code ports over unchanged. An integer type is
``exponent == 0``; its stored code minus ``bias`` is the value (GPTQ's ``uint4b8`` stores q + 8).
A float type has ``exponent`` and ``mantissa`` bits; ``finite_values_only`` and ``nan_repr`` say
how the top codes are used (E4M3FN has no infinities and one NaN pattern, E8M0 is exponent only).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch


class NanRepr(enum.IntEnum):
    NONE = 0  # no NaN (E2M1, integers)
    IEEE_754 = 1  # all-ones exponent with non-zero mantissa
    EXTD_RANGE_MAX_MIN = 2  # only the all-ones code is NaN (E4M3FN, E8M0)


@dataclass(frozen=True)
class ScalarType:
    exponent: int
    mantissa: int
    signed: bool
    bias: int = 0
    finite_values_only: bool = False
    nan_repr: NanRepr = NanRepr.IEEE_754
    name: str = ""

    # ---- properties --------------------------------------------------------------------
    @property
    def size_bits(self) -> int:
        return self.exponent + self.mantissa + int(self.signed)

    def is_floating_point(self) -> bool:
        return self.exponent != 0

    def is_integer(self) -> bool:
        return self.exponent == 0

    def has_bias(self) -> bool:
        return self.bias != 0

    def has_infs(self) -> bool:
        return not self.finite_values_only

    def has_nans(self) -> bool:
        return self.nan_repr != NanRepr.NONE

    def is_ieee_754(self) -> bool:
        return self.nan_repr == NanRepr.IEEE_754 and not self.finite_values_only

    @property
    def min(self) -> float:
        """Smallest representable value (after the bias is applied)."""
        if self.is_integer():
            lo = -(1 << (self.size_bits - 1)) if self.signed else 0
            return lo - self.bias
        return -self.max if self.signed else 0.0

    @property
    def max(self) -> float:
        """Largest finite representable value (after the bias is applied)."""
        if self.is_integer():
            hi = (1 << (self.size_bits - 1)) - 1 if self.signed else (1 << self.size_bits) - 1
            return hi - self.bias
        return _float_max(self)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"ScalarType.{self.name}"

    # vLLM spells these as constructors; keep the spelling.
    @classmethod
    def int_(cls, size_bits: int, bias: int | None = None, name: str = "") -> "ScalarType":
        return cls(0, size_bits - 1, True, bias or 0, name=name or f"int{size_bits}" + (f"b{bias}" if bias else ""))

    @classmethod
    def uint(cls, size_bits: int, bias: int | None = None, name: str = "") -> "ScalarType":
        return cls(0, size_bits, False, bias or 0, name=name or f"uint{size_bits}" + (f"b{bias}" if bias else ""))

    @classmethod
    def float_IEEE754(cls, exponent: int, mantissa: int, name: str = "") -> "ScalarType":
        return cls(exponent, mantissa, True, 0, False, NanRepr.IEEE_754, name or f"float{1 + exponent + mantissa}_e{exponent}m{mantissa}")

    @classmethod
    def float_(cls, exponent: int, mantissa: int, finite_values_only: bool, nan_repr: NanRepr, name: str = "") -> "ScalarType":
        return cls(exponent, mantissa, True, 0, finite_values_only, nan_repr, name or f"float{1 + exponent + mantissa}_e{exponent}m{mantissa}")


def _float_max(t: ScalarType) -> float:
    e_bias = (1 << (t.exponent - 1)) - 1
    if t.mantissa == 0:  # exponent-only (E8M0): the all-ones code is NaN
        top_e = (1 << t.exponent) - 2 if t.nan_repr != NanRepr.NONE else (1 << t.exponent) - 1
        return 2.0 ** (top_e - e_bias)
    if t.nan_repr == NanRepr.EXTD_RANGE_MAX_MIN:
        top_e, top_m = (1 << t.exponent) - 1, (1 << t.mantissa) - 2
    elif t.nan_repr == NanRepr.NONE:
        top_e, top_m = (1 << t.exponent) - 1, (1 << t.mantissa) - 1
    else:
        top_e, top_m = (1 << t.exponent) - 2, (1 << t.mantissa) - 1
    return (1.0 + top_m / (1 << t.mantissa)) * 2.0 ** (top_e - e_bias)


class scalar_types:  # noqa: N801 - vLLM's name
    """The catalogue (vLLM names)."""

    int4 = ScalarType.int_(4)
    uint4 = ScalarType.uint(4)
    int8 = ScalarType.int_(8)
    uint8 = ScalarType.uint(8)
    uint4b8 = ScalarType.uint(4, 8)  # GPTQ 4-bit: stored q + 8
    uint8b128 = ScalarType.uint(8, 128)  # GPTQ 8-bit: stored q + 128
    float8_e4m3fn = ScalarType.float_(4, 3, True, NanRepr.EXTD_RANGE_MAX_MIN, "float8_e4m3fn")
    float8_e5m2 = ScalarType.float_IEEE754(5, 2, "float8_e5m2")
    float8_e8m0fnu = ScalarType(8, 0, False, 0, True, NanRepr.EXTD_RANGE_MAX_MIN, "float8_e8m0fnu")
    float4_e2m1f = ScalarType.float_(2, 1, True, NanRepr.NONE, "float4_e2m1f")
    float6_e3m2f = ScalarType.float_(3, 2, True, NanRepr.NONE, "float6_e3m2f")
    float6_e2m3f = ScalarType.float_(2, 3, True, NanRepr.NONE, "float6_e2m3f")
    float16_e8m7 = ScalarType.float_IEEE754(8, 7, "bfloat16")
    float16_e5m10 = ScalarType.float_IEEE754(5, 10, "float16")
    bfloat16 = float16_e8m7
    float16 = float16_e5m10

    @classmethod
    def all(cls) -> dict[str, ScalarType]:
        return {k: v for k, v in vars(cls).items() if isinstance(v, ScalarType)}

    @classmethod
    def by_name(cls, name: str) -> ScalarType:
        try:
            return cls.all()[name]
        except KeyError:
            raise ValueError(f"unknown scalar type {name!r}; known: {sorted(cls.all())}") from None


# torch dtypes that stand for the float types (the ones this torch has).
TORCH_DTYPES: dict[str, torch.dtype] = {
    n: getattr(torch, n)
    for n in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float4_e2m1fn_x2", "bfloat16", "float16")
    if hasattr(torch, n)
}
