"""The one scheme grammar: a short name (``w4a16-g128``, ``int8-static-asym``, ``nvfp4``) -> a layer
config. ``QuantLinear.from_linear``, ``qlinear.nn.scheme_config`` and every CLI command use it; each
family parses its own names (``Family.parse_scheme``), and a family's name stands for its
representative scheme (``mp`` -> ``w4a16-g128``, ``fp8`` -> ``fp8-dynamic``)."""

from __future__ import annotations

import torch

from ..config import FAMILIES, LayerConfig
from . import all_families

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "half": torch.float16, "fp32": torch.float32, "float32": torch.float32}


def parse_dtype(s: str | torch.dtype) -> torch.dtype:
    if isinstance(s, torch.dtype):
        return s
    try:
        return DTYPES[s.lower().removeprefix("torch.")]
    except KeyError:
        raise ValueError(f"dtype: {s!r} is not one of {sorted(DTYPES)}") from None


def scheme_config(scheme: str, n: int, k: int, dtype: str | torch.dtype = torch.bfloat16) -> LayerConfig:
    """A scheme name -> the layer config for a weight [N, K] (``n`` = out features, ``k`` = in
    features) with activations of ``dtype`` (a torch dtype or ``bf16`` / ``fp16`` / ``fp32``)."""
    fams = all_families()
    s = scheme.strip().lower().replace("_", "-")
    fam = fams.get(s.replace("-", "_"))
    if fam is not None:
        s = fam.scheme
    dt = parse_dtype(dtype)
    for f in fams.values():
        c = f.parse_scheme(s, n, k, dt)
        if c is not None:
            return c
    raise ValueError(f"scheme: unknown {scheme!r}; known: {', '.join(SCHEMES)} (w4a16/w8a16/awq take -gG for any "
                     f"G, -ch, -asym, -actorder; int8-* takes -asym, -tensor), or a family name {FAMILIES}")


SCHEMES: tuple[str, ...] = tuple(s for f in all_families().values() for s in f.schemes)
SCHEME_HELP: dict[str, str] = {s: h for f in all_families().values() for s, h in f.help.items()}
FAMILY_SCHEME: dict[str, str] = {name: f.scheme for name, f in all_families().items()}
