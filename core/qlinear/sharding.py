"""Tensor-parallel sharding of quantized parameters: which slice of each parameter rank r of w holds.

Two kinds of split, as in Megatron / vLLM:

* **column** (split N, the output features): every parameter indexed by output row is cut into w
  equal row ranges; the activation stays whole on every rank. A fused module (qkv, gate_up) is cut
  per logical part (``output_sizes``): rank r holds ``q_r | k_r | v_r``.
* **row** (split K, the input features): every parameter indexed by input column is cut into w
  ranges; each rank sees its K slice of the activation and the partial outputs are summed.

The primitive, ``shard_params``, reads only the rank's slice of each parameter: a value may be a
tensor or any lazy view that has ``get_shape()`` and slice indexing (safetensors' ``get_slice``),
so a checkpoint can be loaded straight into shards. Names are qlinear's as-loaded names
(``qlinear.layers``). ``layout="checkpoint"`` means int8/fp8 ``weight`` is stored [N, K] (as
compressed-tensors writes it); ``layout="loaded"`` means the in-memory [K, N] view
``quantize_layer_params`` makes.

What each family needs (a split that breaks one of these is refused, with the reason):

* wNa16: ``weight_packed`` packs 32/bits codes along K, so a row split must land on a pack
  boundary; group scales / zero points are cut at group boundaries; zero points pack along N, so a
  column split must land on a pack boundary too. Act-order (``g_idx``) row slices keep the whole
  scale (and zero-point) table and the rank's slice of ``g_idx``, as vLLM does for Marlin
  (``is_k_full`` False): the rank's input channels reference groups anywhere in K. Per-channel
  scales (group -1) are replicated on a row split (each covers the whole input row).
* INT8 / FP8 per-tensor and per-channel: per-channel scales follow N; per-tensor scales and static
  activation scales are replicated. ``azp_adj`` (asymmetric INT8) is recomputed from the rank's
  weight slice. Fused parts with different per-tensor weight scales: FP8 requantizes each part to
  the largest scale (vLLM's ``requantize_with_max_scale``), INT8 turns them into per-channel scales
  (vLLM's ``convert_to_channelwise``); their static activation scales take the largest value (FP8)
  or must agree (INT8, whose zero point would change the codes).
* block FP8: 128x128 scale tiles must not be split, so N (column) or K (row) slices are multiples
  of the block (a ragged last block is allowed at the end of the whole dimension only).
* NVFP4 / MXFP4 / MXFP8: scales per 16 / 32 elements along K; a row split lands on a scale block
  boundary. Scales are sharded in their linear (as-loaded) layout; kernels swizzle them afterwards
  for the partition shape. NVFP4's global scales are replicated and must agree across fused parts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .config import LayerConfig
from .families import Sharding, family_of

COLUMN, ROW = "column", "row"


class ShardingError(ValueError):
    """A layer cannot be split this way; the message says which field and why."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _check_split(kind: str, rank: int, world: int) -> None:
    if kind not in (COLUMN, ROW):
        raise ShardingError(f"kind: {kind!r} is not 'column' or 'row'")
    if not (isinstance(world, int) and world >= 1):
        raise ShardingError(f"world: expected a positive int, got {world!r}")
    if not (isinstance(rank, int) and 0 <= rank < world):
        raise ShardingError(f"rank: expected an int in [0, {world}), got {rank!r}")


def _sharding(c: LayerConfig) -> Sharding:
    """The family's split rules (``qlinear.families``), or the reason it has none."""
    try:
        sh = family_of(c).sharding
    except ValueError as e:
        raise ShardingError(str(e)) from None
    if sh is None:
        raise ShardingError(f"config.family: {c.family} layers have no tensor-parallel split")
    return sh


def _nk(c: LayerConfig) -> tuple[int, int]:
    nk = _sharding(c).full_nk(c)
    if nk is None:
        raise ShardingError(f"config.weight_shape: a layer to shard needs its weight shape ({c.describe()})")
    return nk


def _parts(n: int, output_sizes: Sequence[int] | None) -> list[int]:
    parts = list(output_sizes) if output_sizes else [n]
    if any(not isinstance(p, int) or p <= 0 for p in parts) or sum(parts) != n:
        raise ShardingError(f"output_sizes: {list(parts)} must be positive ints summing to N={n}")
    return parts


# ---- per-rank config ------------------------------------------------------------------------------
def partition_config(c: LayerConfig, kind: str, world: int, output_sizes: Sequence[int] | None = None) -> LayerConfig:
    """The config of one rank's slice of full layer ``c`` (the same on every rank): the partition
    shape every kernel is gated on. Raises ``ShardingError`` naming the reason a split can't be made."""
    _check_split(kind, 0, world)
    sh = _sharding(c)
    n, k = _nk(c)
    why_not = sh.refuse(c)
    if why_not:
        raise ShardingError(why_not)
    parts = _parts(n, output_sizes)
    if kind == ROW and output_sizes and len(parts) > 1:
        raise ShardingError("output_sizes: logical parts are a column-parallel notion (a row split cuts K)")
    if kind == COLUMN:
        for p in parts:
            if p % world:
                raise ShardingError(f"output_sizes: output part of {p} features does not split evenly over {world} ranks")
        np_, kp = n // world, k
    else:
        if k % world:
            raise ShardingError(f"weight_shape: K={k} input features do not split evenly over {world} ranks")
        np_, kp = n, k // world
    unit, why = sh.boundary(c, kind == COLUMN)  # the unit a slice boundary must land on
    if world > 1:
        for i, p in enumerate(parts if kind == COLUMN else [k]):
            local = p // world
            off = sum(parts[:i]) if kind == COLUMN else 0
            if local % unit or off % unit:
                what = f"part {i} ({p} features, offset {off})" if len(parts) > 1 else f"{p} features"
                raise ShardingError(f"{'output_sizes' if kind == COLUMN else 'weight_shape'}: a {kind}-parallel split of "
                                    f"{what} over {world} ranks gives slices of {local}, not on a multiple of {unit}: {why}")
    try:
        return sh.partition(c, np_, kp)
    except ValueError as e:
        raise ShardingError(f"{sh.shape_field}: the {kind}-parallel slice (N={np_}, K={kp}) is invalid: {e}") from e


# ---- lazy slicing -------------------------------------------------------------------------------
def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else tuple(t.get_shape())


def _read(t: Any, dim: int | None = None, start: int = 0, stop: int | None = None) -> torch.Tensor:
    """Read ``t[start:stop]`` along ``dim`` (everything when dim is None), touching only that range
    of a lazy view. Tensors are cloned so a shard never keeps the full tensor's storage alive."""
    shape = _shape(t)
    if dim is None or not shape:
        out = t[...]
    else:
        idx = [slice(None)] * len(shape)
        idx[dim] = slice(start, stop)
        out = t[tuple(idx)]
    return out.clone() if isinstance(t, torch.Tensor) else out


class _TransposedView:
    """A [K, N] tensor seen as [N, K] for slicing (the loaded layout of int8/fp8 ``weight``)."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t

    def get_shape(self):
        return list(self.t.shape[::-1])

    def __getitem__(self, idx):
        return self.t.t()[idx].contiguous()


def _rule(c: LayerConfig, name: str, kind: str) -> tuple[int | None, int, bool]:
    """(dim, unit, cdiv_end) for parameter ``name`` in the checkpoint layout (``Sharding.rule``)."""
    return _sharding(c).rule(c, name, kind == COLUMN)


def _slice_param(t: Any, dim: int | None, unit: int, cdiv_end: bool, start: int, stop: int, full: int, name: str) -> torch.Tensor:
    if dim is None:
        return _read(t)
    shape = _shape(t)
    if dim >= len(shape):
        raise ShardingError(f"{name}.shape: {list(shape)} has no dimension {dim} to split")
    a = start // unit
    b = _cdiv(stop, unit) if (cdiv_end and stop == full) else stop // unit
    if start % unit or (b * unit != stop and not (cdiv_end and stop == full)):
        raise ShardingError(f"{name}: the slice [{start}, {stop}) does not land on its {unit}-feature units")
    want = _cdiv(full, unit) if cdiv_end else full // unit
    if shape[dim] != want:
        raise ShardingError(f"{name}.shape: dimension {dim} is {shape[dim]}, expected {want} for {full} features")
    return _read(t, dim, a, b)


# ---- the primitive ------------------------------------------------------------------------------
def shard_params(c: LayerConfig, params: Mapping[str, Any] | Sequence[Mapping[str, Any]], kind: str, rank: int,
                 world: int, *, output_sizes: Sequence[int] | None = None,
                 layout: str = "loaded") -> tuple[LayerConfig, dict[str, torch.Tensor]]:
    """Full layer ``c`` + its parameters -> (rank config, rank parameters in the as-loaded layout).

    ``params``: one mapping name -> full tensor (or lazy view) for the whole layer, or, for a fused
    column-parallel module, a sequence of such mappings, one per logical part (each with that part's
    own full shapes, as checkpoints store q/k/v or gate/up); then ``output_sizes`` defaults to the
    parts' widths. Only the rank's slice of each parameter is read.
    """
    _check_split(kind, rank, world)
    if layout not in ("loaded", "checkpoint"):
        raise ShardingError(f"layout: {layout!r} is not 'loaded' or 'checkpoint'")
    per_part = not isinstance(params, Mapping)
    groups = list(params) if per_part else [params]
    n, k = _nk(c)
    if per_part:
        if kind != COLUMN:
            raise ShardingError("params: a sequence of per-part parameters is for column-parallel fused modules")
        widths = [_part_width(c, p, layout) for p in groups]
        if output_sizes is not None and list(output_sizes) != widths:
            raise ShardingError(f"output_sizes: {list(output_sizes)} do not match the parts' widths {widths}")
        output_sizes = widths
    rc = partition_config(c, kind, world, output_sizes)
    parts = _parts(n, output_sizes)
    sh = _sharding(c)

    def view(p: Mapping[str, Any], name: str) -> Any:
        t = p[name]
        if layout == "loaded" and sh.transposed_weight and name == "weight" and isinstance(t, torch.Tensor):
            return _TransposedView(t)
        return t

    if kind == ROW:
        kp = k // world
        out = {}
        for name in groups[0]:
            if name in sh.derived:
                continue
            dim, unit, ragged = _rule(c, name, kind)
            out[name] = _slice_param(view(groups[0], name), dim, unit, ragged, rank * kp, (rank + 1) * kp, k, name)
    else:
        # slice every part, then join along N; a single-part layer is one "part" covering all of N
        if per_part:
            sources = [(p, 0, w, w) for p, w in zip(groups, parts)]
        else:
            offs = [sum(parts[:i]) for i in range(len(parts))]
            sources = [(groups[0], o, w, n) for o, w in zip(offs, parts)]
        pieces: dict[str, list[torch.Tensor]] = {}
        for p, off, w, full in sources:
            local = w // world
            for name in p:
                if name in sh.derived:
                    continue
                dim, unit, ragged = _rule(c, name, kind)
                a, b = off + rank * local, off + (rank + 1) * local
                pieces.setdefault(name, []).append(_slice_param(view(p, name), dim, unit, ragged, a, b, full, name))
        out, rc = _join_parts(c, rc, pieces)
    if sh.transposed_weight and "weight" in out:
        out["weight"] = out["weight"].t()  # the loaded layout: a [K, N] view of the [N, K] codes
    sh.finish(c, out)  # the rank's derived parameters (azp_adj, NVFP4's alpha, ...)
    return rc, out


def _part_width(c: LayerConfig, p: Mapping[str, Any], layout: str = "loaded") -> int:
    """N of one logical part, from its main weight ([K, N] for INT8/FP8 in the loaded layout)."""
    sh = _sharding(c)
    transposed = layout == "loaded" and sh.transposed_weight and isinstance(p[sh.main], torch.Tensor)
    return _shape(p[sh.main])[1 if transposed else 0]


def _join_parts(c: LayerConfig, rc: LayerConfig, pieces: dict[str, list[torch.Tensor]]):
    """Concatenate the per-part slices along N. A replicated value (per-tensor scale, g_idx) that
    is the same in every part is kept once; one that differs is reconciled the way vLLM does for
    fused modules, or refused."""
    out: dict[str, torch.Tensor] = {}
    split = [nm for nm in pieces if _rule(c, nm, COLUMN)[0] is not None]
    for name in split:
        ts = pieces[name]
        out[name] = torch.cat(ts, _rule(c, name, COLUMN)[0]) if len(ts) > 1 else ts[0]
    sh, fam = _sharding(c), c.family
    for name in (nm for nm in pieces if nm not in split):
        ts = pieces[name]
        if all(t.shape == ts[0].shape and torch.equal(t, ts[0]) for t in ts[1:]):
            out[name] = ts[0]
            continue
        vals = [t.float().reshape(()) for t in ts] if all(t.numel() == 1 for t in ts) else None
        new_rc = sh.reconcile(c, rc, name, vals, pieces, out) if vals else None  # vLLM's fused-module rules
        if new_rc is None:
            raise ShardingError(f"{name}: the fused parts carry different values and a {fam} layer holds one; "
                                f"quantize the parts with a shared {name} (llm-compressor fuses them for qkv/gate_up)")
        rc = new_rc
    return out, rc
