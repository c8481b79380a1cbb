"""``fuse_projections``: sibling linears that read the same input run as one GEMM.

A transformers decoder layer calls q/k/v on one hidden state and gate/up on another. Run
separately that is five GEMMs, two of them small (k and v of Llama-3-8B are 1024 x 4096, 2 MiB
of 4-bit weights: a launch and a latency chain, not a weight stream). Fused, it is two wide ones
(6144 x 4096, 28672 x 4096), the shapes the decode kernels and the tuned tables are built for.

The model's code is left alone: each projection becomes a ``FusedProjection`` that returns its
columns of the group's output. The group's first member holds the fused ``nn.Linear`` (as its
child ``fused``, so ``quantize_model`` finds and quantizes it like any linear) and runs it; the
others take their columns from that output when called with the same input tensor, and run the
group themselves when called with another one (correct in any call order, only slower).

A float model is fused, then quantized: the fused layer is quantized as one (per-tensor schemes
get one scale for the group). A quantized model (``quantize_model``, ``load_quantized``: a GPTQ or
AWQ checkpoint as it is stored, q/k/v apart) is fused from its layers' as-loaded parameters, joined
along N by the tensor-parallel code's rules for fused modules (``qlinear.sharding``): per-channel
and group parameters are concatenated, per-tensor FP8 weight scales are requantized to the largest
one (INT8's become per-channel), and parts whose shared values cannot be reconciled (act-order
``g_idx``, NVFP4 global scales that differ) are refused, naming the group. A fused model is not
saved as a compressed-tensors checkpoint (its tensors no longer carry the checkpoint's names): save
before fusing.
"""

from __future__ import annotations

from typing import Iterable

import torch

from .quantize import set_submodule

# the sibling groups of Llama-style decoders (Llama, Mistral, Qwen2, ...): attention's input
# projections and the gated MLP's two input projections
DEFAULT_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _GroupOutput:
    """The group's last input and output, shared by its members (a plain object, not a Module: it
    holds no parameters and adds nothing to the state dict)."""

    def __init__(self) -> None:
        self.head: "FusedProjection | None" = None
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None


class FusedProjection(torch.nn.Module):
    """Columns ``[start, end)`` of a fused group's output. The group's first member owns the fused
    layer as ``self.fused``; the others have ``fused = None``."""

    def __init__(self, out: _GroupOutput, start: int, end: int, label: str,
                 fused: torch.nn.Module | None = None, last: bool = False) -> None:
        super().__init__()
        self.out, self.start, self.end, self.label, self.last = out, start, end, label, last
        self.fused = fused
        if fused is not None:
            out.head = self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.out
        if self.fused is not None:
            out.x, out.y = x, self.fused(x)
        elif out.x is not x:  # not the input the head just ran: run the group on this one
            out.head(x)
        y = out.y[..., self.start:self.end]
        if self.last:  # the group's output is not held past its last member (a prefill's is large)
            out.x = out.y = None
        return y

    @property
    def in_features(self) -> int:
        return self.out.head.fused.in_features

    @property
    def out_features(self) -> int:
        return self.end - self.start

    def extra_repr(self) -> str:
        return f"{self.label}[{self.start}:{self.end}]"


def fuse_projections(model: torch.nn.Module, groups: Iterable[Iterable[str]] = DEFAULT_GROUPS, *,
                     regime: str | None = None) -> list[str]:
    """Fuse each module's sibling linears named in ``groups`` (all names of a group present, with one
    input width, dtype and device), in place: float ``nn.Linear`` groups into one ``nn.Linear``
    (quantize afterwards: ``quantize_model`` then sees one linear per group), ``QuantLinear`` groups
    of one scheme into one ``QuantLinear`` (its kernel chosen for ``regime``, see ``QuantLinear``).
    Every group is checked and built before the first one is swapped in: a refusal leaves the model
    as it was. Returns the fused groups' names (``model.layers.0.self_attn.q_proj+k_proj+v_proj``)."""
    from ..nn import QuantLinear

    groups = [tuple(g) for g in groups]
    for g in groups:
        if len(g) < 2 or len(set(g)) != len(g):
            raise ValueError(f"groups: {g} must name two or more distinct sibling linears")
    plans = []
    for parent_name, parent in model.named_modules():
        for names in groups:
            mods = [getattr(parent, n, None) for n in names]
            if any(m is None for m in mods):
                continue
            where = f"{parent_name}.{names[0]}" if parent_name else names[0]
            if any(isinstance(m, FusedProjection) for m in mods):
                raise ValueError(f"{where}: already fused")
            quantized = all(isinstance(m, QuantLinear) for m in mods)
            if not quantized and not all(type(m) is torch.nn.Linear for m in mods):
                continue  # not plain linears (a custom layer, or float and quantized mixed): left alone
            first = _input_facts(mods[0])
            bad = [n for n, m in zip(names, mods) if _input_facts(m) != first]
            if bad:
                raise ValueError(f"{where}: {bad} differ from {names[0]} in input width, dtype or device; "
                                 "a fused group shares one input")
            if len({id(m) for m in mods}) != len(mods):
                raise ValueError(f"{where}: the group {names} names one module twice")
            label = "+".join(names)
            group = f"{parent_name}.{label}" if parent_name else label
            fused = _join_quantized(group, mods, regime) if quantized else None
            plans.append((parent_name, names, mods, fused, label, group))
    for parent_name, names, mods, fused, label, _ in plans:
        fused = fused if fused is not None else _concat(mods)
        out = _GroupOutput()
        start = 0
        for i, (n, m) in enumerate(zip(names, mods)):
            end = start + m.out_features
            member = FusedProjection(out, start, end, label, fused if i == 0 else None, last=i == len(names) - 1)
            set_submodule(model, f"{parent_name}.{n}" if parent_name else n, member)
            start = end
    return [group for *_, group in plans]


def _concat(mods: list[torch.nn.Linear]) -> torch.nn.Linear:
    w = mods[0].weight
    n = sum(m.out_features for m in mods)
    fused = torch.nn.Linear(mods[0].in_features, n, bias=any(m.bias is not None for m in mods),
                            device="meta", dtype=w.dtype)
    fused.weight = torch.nn.Parameter(torch.cat([m.weight.detach() for m in mods]), requires_grad=w.requires_grad)
    if fused.bias is not None:  # a member without a bias adds zeros: the same output
        fused.bias = torch.nn.Parameter(torch.cat([
            m.bias.detach() if m.bias is not None else torch.zeros(m.out_features, dtype=w.dtype, device=w.device)
            for m in mods]), requires_grad=w.requires_grad)
    return fused


def _input_facts(m: torch.nn.Module) -> tuple:
    """(input width, activation dtype, device) of a float or quantized linear."""
    from ..families import act_dtype

    if isinstance(m, torch.nn.Linear):
        return m.in_features, m.weight.dtype, m.weight.device
    return m.in_features, act_dtype(m.config), m._device


def _join_quantized(where: str, mods: list, regime: str | None):
    """One ``QuantLinear`` for quantized siblings: their as-loaded parameters joined along N as a
    column-parallel fused module's are (``shard_params`` over the parts, one rank)."""
    from ..nn import QuantLinear
    from ..sharding import COLUMN, ShardingError, _sharding, shard_params

    c0 = mods[0].config
    params = []
    for i, m in enumerate(mods):
        p = getattr(m, "checkpoint_params", None) or getattr(m, "loaded_params", None)
        if p is None:
            raise ValueError(f"{where}: part {i} keeps no as-loaded parameters (made with keep_checkpoint=False); "
                             "fuse the float model before quantize_model, or keep them")
        params.append(p)
    k = mods[0].in_features
    try:
        sh = _sharding(c0)
        # every part must be the first part's scheme at its own width
        for i, m in enumerate(mods):
            if sh.whole_config(c0, m.out_features, k) != m.config:
                raise ValueError(f"part {i} is {m.config.describe()}, part 0 {c0.describe()}: one scheme per group")
        rc, joined = shard_params(sh.whole_config(c0, sum(m.out_features for m in mods), k), params, COLUMN, 0, 1)
    except ShardingError as e:
        raise ValueError(f"{where}: the parts cannot be joined: {e}") from None
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    biases = [m.bias for m in mods]
    bias = None
    if any(b is not None for b in biases):
        ref = next(b for b in biases if b is not None)
        bias = torch.cat([b.detach() if b is not None else ref.new_zeros(m.out_features) for b, m in zip(biases, mods)])
    dev = mods[0]._device
    return QuantLinear(rc, {name: t.to(dev) for name, t in joined.items()}, bias, None, regime)
