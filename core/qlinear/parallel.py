"""Tensor-parallel quantized linears over ``torch.distributed`` (NCCL on GPUs, gloo on CPU).

    dist.init_process_group("nccl")                     # or "gloo" on CPU
    up = ColumnParallelQuantLinear.from_linear(gate_up, "w4a16-g128", output_sizes=[14336, 14336])
    down = RowParallelQuantLinear.from_linear(down_proj, "w4a16-g128")
    y = down(act(up(x)))                                 # one all-reduce, inside ``down``

Each rank holds one slice of the layer (``qlinear.sharding`` says which slice of every parameter,
and refuses splits a format can't take), selects its kernel for the slice's config (the
partition shape: every kernel's gates see the rank's N and K), and runs it. A column-parallel layer
returns its N slice, or all-gathers the full output when ``gather_output``; a row-parallel layer
takes its K slice of the input (``input_is_parallel``, as a column-parallel layer before it
produces) and all-reduces (sums) the partial outputs, then adds the bias once. Collectives run in
the output dtype on the process group given (default: the world), like vLLM's; both are
CUDA-graph capturable with NCCL.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from .config import LayerConfig
from .layers import quantize_layer_params
from .nn import QuantLinear, scheme_config
from .sharding import COLUMN, ROW, ShardingError, partition_config, shard_params

__all__ = ["ColumnParallelQuantLinear", "RowParallelQuantLinear", "ShardingError", "partition_config", "shard_params"]


def _dist():
    import torch.distributed as dist

    return dist


def _rank_world(group, rank: int | None, world: int | None) -> tuple[int, int]:
    """The rank and world size: given, or from the process group (the default one when None)."""
    if rank is not None and world is not None:
        return rank, world
    dist = _dist()
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("group: torch.distributed is not initialized; call init_process_group first "
                         "or pass rank= and world_size=")
    return (dist.get_rank(group) if rank is None else rank), (dist.get_world_size(group) if world is None else world)


class _ParallelQuantLinear(torch.nn.Module):
    kind = ""

    def __init__(self, config: LayerConfig, params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                 bias: torch.Tensor | None = None, *, group=None, rank: int | None = None,
                 world_size: int | None = None, output_sizes: Sequence[int] | None = None,
                 layout: str = "loaded", kernel=None, device: torch.device | str | None = None) -> None:
        """``config``: the full (unsharded) layer; ``params``: its full parameters, tensors or lazy
        views (see ``qlinear.sharding.shard_params``; a sequence of per-part mappings for a fused
        column-parallel module); ``bias``: the full [N] bias (or per-part list)."""
        super().__init__()
        self.group = group
        self.rank, self.world_size = _rank_world(group, rank, world_size)
        self.full_config = config
        rc, p = shard_params(config, params, self.kind, self.rank, self.world_size, output_sizes=output_sizes,
                             layout=layout)
        if device is not None:
            p = {k: v.to(device) for k, v in p.items()}
        self.output_sizes = list(output_sizes) if output_sizes else None
        if self.output_sizes is None and not isinstance(params, Mapping):
            from .sharding import _part_width  # the parts' widths, as shard_params found them

            self.output_sizes = [_part_width(config, q, layout) for q in params]
        b = self._shard_bias(bias, config, p)
        # the local layer: the kernel is selected for the partition config (rc), like any layer
        self.local = QuantLinear(rc, p, b if self.kind == COLUMN else None, kernel)
        self.config = rc
        if self.kind == ROW and b is not None:
            self.bias = torch.nn.Parameter(b, requires_grad=False)
        else:
            self.bias = None

    def _shard_bias(self, bias, config: LayerConfig, p) -> torch.Tensor | None:
        if bias is None:
            return None
        dev = next(iter(p.values())).device
        if isinstance(bias, (list, tuple)):
            bias = torch.cat(list(bias))
        bias = bias.detach()
        n = config.shape_nk[0] if config.family != "mp" else config.full_weight_shape[1]
        if tuple(bias.shape) != (n,):
            raise ValueError(f"bias.shape: expected the full layer's ({n},), got {tuple(bias.shape)}")
        if self.kind == ROW:
            return bias.to(dev)
        parts = self.output_sizes or [n]
        offs = [sum(parts[:i]) for i in range(len(parts))]
        return torch.cat([bias[o + self.rank * (w // self.world_size): o + (self.rank + 1) * (w // self.world_size)]
                          for o, w in zip(offs, parts)]).to(dev)

    @property
    def kernel(self):
        return self.local.kernel

    @property
    def selection(self):
        return self.local.selection

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, scheme: str, *, calib_x: torch.Tensor | None = None,
                    dtype: torch.dtype | None = None, **kw) -> "_ParallelQuantLinear":
        """Quantize the whole float layer (so every rank's slice equals the single-process layer's
        slice bit for bit), then keep this rank's slice. ``kw`` as for the constructor."""
        if not isinstance(linear, torch.nn.Linear):
            raise TypeError(f"linear: expected torch.nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        act = dtype or (w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16)
        config = scheme_config(scheme, w.shape[0], w.shape[1], act)
        params = quantize_layer_params(config, w.float(), calib_x=calib_x)
        bias = linear.bias.detach().to(act) if linear.bias is not None else None
        kw.setdefault("device", w.device)
        return cls(config, params, bias, **kw)

    @classmethod
    def from_quant_linear(cls, layer: QuantLinear, params: Mapping[str, Any] | None = None, **kw):
        """Shard an already-quantized ``QuantLinear``. Its kernel has re-laid its parameters for
        itself, so the as-loaded parameters are needed: ``params``, or the layer's own when it was
        built with ``keep_loaded_params=True``."""
        loaded = params if params is not None else getattr(layer, "loaded_params", None)
        if loaded is None:
            raise ValueError("params: the layer's parameters were re-laid by its kernel "
                             f"({layer.kernel.full_name()}); pass the as-loaded parameters, or build the "
                             "QuantLinear with keep_loaded_params=True")
        return cls(layer.config, loaded, layer.bias, **kw)

    def extra_repr(self) -> str:
        n, k = self.config.shape_nk
        return (f"{self.kind}-parallel rank {self.rank}/{self.world_size}, local in={k} out={n}, "
                f"kernel={self.local.kernel.full_name()}")


class ColumnParallelQuantLinear(_ParallelQuantLinear):
    """Splits N (output features). ``output_sizes`` names the logical parts of a fused module
    (qkv: [q, k, v]; gate_up: [g, u]) so each rank holds its slice of every part.
    ``gather_output``: all-gather so every rank returns the full [.., N] output in the original
    part order (else the rank's [.., N/w] slice, parts in order)."""

    kind = COLUMN

    def __init__(self, *args, gather_output: bool = False, **kw) -> None:
        super().__init__(*args, **kw)
        self.gather_output = gather_output
        n_local = self.config.shape_nk[0]
        parts = self.output_sizes or [n_local * self.world_size]
        # gathered [rank0: part0_0 part1_0 .., rank1: ..] -> [part0_0 part0_1 .., part1_0 ..]
        order, offs = [], [sum(p // self.world_size for p in parts[:i]) for i in range(len(parts))]
        for off, p in zip(offs, parts):
            w = p // self.world_size
            for r in range(self.world_size):
                order.extend(range(r * n_local + off, r * n_local + off + w))
        identity = order == list(range(len(order)))
        self.register_buffer("gather_index", None if identity else torch.tensor(order, dtype=torch.long,
                             device=self.local_device()), persistent=False)

    def local_device(self) -> torch.device:
        return next(self.local.parameters()).device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local(x)
        if not self.gather_output or self.world_size == 1:
            return y
        dist = _dist()
        lead, n = y.shape[:-1], y.shape[-1]
        y2 = y.reshape(-1, n).contiguous()
        out = torch.empty((self.world_size * y2.shape[0], n), dtype=y.dtype, device=y.device)
        # torch >= 2.12 names it all_gather_single (all_gather_into_tensor is its deprecated alias)
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        gather(out, y2, group=self.group)
        full = out.view(self.world_size, y2.shape[0], n).permute(1, 0, 2).reshape(y2.shape[0], self.world_size * n)
        if self.gather_index is not None:
            full = full.index_select(1, self.gather_index)
        return full.reshape(*lead, self.world_size * n)


class RowParallelQuantLinear(_ParallelQuantLinear):
    """Splits K (input features). ``input_is_parallel`` (default): x is already this rank's K slice
    (what a column-parallel layer without gather returns); else the rank takes its slice of a full
    x. ``reduce_results``: all-reduce (sum) the partial outputs; the bias is added once, after.
    ``all_reduce``: a function ``y -> summed y`` to use instead of ``torch.distributed.all_reduce``
    on the group (e.g. a symmetric-memory one-shot all-reduce; ``bench/tp_step.py`` has one)."""

    kind = ROW

    def __init__(self, *args, input_is_parallel: bool = True, reduce_results: bool = True,
                 all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.input_is_parallel = input_is_parallel
        self.reduce_results = reduce_results
        self.all_reduce = all_reduce

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kp = self.config.shape_nk[1]
        if not self.input_is_parallel:
            x = x[..., self.rank * kp:(self.rank + 1) * kp].contiguous()
        y = self.local(x)
        if self.reduce_results and self.world_size > 1:
            if self.all_reduce is not None:
                y = self.all_reduce(y)
            else:
                _dist().all_reduce(y, group=self.group)
        if self.bias is not None and (self.reduce_results or self.rank == 0):  # unreduced: the bias once, on rank 0
            y = y + self.bias.to(y.dtype)
        return y
