"""Checks for the tensor-parallel layers: run in every rank of an initialized process group, they
compare the sharded layers with the single-process layer on the same weights and inputs.

Used by the CPU tests (2 gloo processes) and by ``bench/tp_step.py`` (NCCL on GPUs); ``spawn`` starts
``world`` processes on a free local port with a time limit. Not imported by the runtime path.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass

import torch

from .formats import reference_linear
from .layers import quantize_layer_params
from .nn import QuantLinear, scheme_config
from .parallel import ColumnParallelQuantLinear, RowParallelQuantLinear
from .sharding import shard_params
from .testing import TOLERANCE

# Formats whose activation scale is computed from the activation itself per token: a row-parallel
# rank sees only its K slice, so it quantizes x with different scales than a single process does
# (as vLLM does too). Their row-parallel output is checked against the float64 reference of the
# sharded computation, and against the single-process layer at twice the family tolerance.
DYNAMIC_PER_TOKEN = ("int8-dynamic", "int8-dynamic-asym", "fp8-dynamic")

# The README's scheme list, one per family variant the TP layers must shard.
TP_SCHEMES = ("w4a16-g128", "w4a16-g128-actorder", "awq-g128", "w8a16-ch", "int8-dynamic", "int8-dynamic-asym",
              "int8-static", "fp8-tensor", "fp8-dynamic", "fp8-block", "nvfp4", "mxfp4", "mxfp8", "w4a8")


@dataclass
class Layer:
    """One linear of a model: name, split, full [N, K], logical parts of a fused column module."""
    name: str
    kind: str  # "column" | "row"
    n: int
    k: int
    parts: tuple[int, ...] | None = None


def llama_layers(hidden: int, inter: int, q: int, kv: int) -> list[Layer]:
    """The four linears of a Llama block: qkv and gate_up column-parallel (fused), o and down row-parallel."""
    return [Layer("qkv", "column", q + 2 * kv, hidden, (q, kv, kv)), Layer("o", "row", hidden, q),
            Layer("gate_up", "column", 2 * inter, hidden, (inter, inter)), Layer("down", "row", hidden, inter)]


LLAMA3_8B = llama_layers(4096, 14336, 4096, 1024)
SMALL = llama_layers(256, 256, 256, 256)  # every split lands on 128-blocks with 2 ranks


@dataclass
class Result:
    scheme: str
    layer: str
    kind: str
    kernel: str
    single_kernel: str
    exact: bool
    err_vs_single: float
    err_vs_reference: float
    tol: float
    ok: bool
    note: str = ""


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def check_layer(scheme: str, layer: Layer, *, m: int = 16, seed: int = 0, device="cpu",
                dtype=torch.bfloat16, group=None) -> Result:
    """Build the full layer and this rank's shard from the same seeded weights, run both, compare."""
    import torch.distributed as dist

    world = dist.get_world_size(group)
    torch.manual_seed(seed)  # every rank draws the same weights, inputs and act-order permutation
    dev = torch.device(device)
    w = (torch.randn(layer.n, layer.k) / layer.k ** 0.5).to(dev)
    bias = torch.randn(layer.n).to(dtype).to(dev)
    x = torch.randn(m, layer.k).to(dtype).to(dev)
    c = scheme_config(scheme, layer.n, layer.k, dtype)
    p = quantize_layer_params(c, w, calib_x=x)
    full = QuantLinear(c, dict(p), bias)
    xd = x
    y1 = full(xd)
    qa = full.kernel.quantizes_activation  # weight-only emulations (MXFP8) keep x in 16 bits
    if layer.kind == "column":
        tp = ColumnParallelQuantLinear(c, p, bias, group=group, output_sizes=layer.parts, gather_output=True)
        y = tp(xd)
        ref = reference_linear(c, p, x, bias, quantize_activation=qa)  # x is quantized as in one process
        tol = TOLERANCE[c.family]
        ok_single = _rel(y, y1) <= tol
    else:
        tp = RowParallelQuantLinear(c, p, bias, group=group, input_is_parallel=False)
        y = tp(xd)
        kp = layer.k // world
        ref = sum(reference_linear(*shard_params(c, p, "row", r, world), x[:, r * kp:(r + 1) * kp], quantize_activation=qa)
                  for r in range(world)) + bias.double()
        tol = TOLERANCE[c.family]
        ok_single = _rel(y, y1) <= (2 * tol if scheme in DYNAMIC_PER_TOKEN else tol)
    err_ref = _rel(y, ref)
    res = Result(scheme, layer.name, layer.kind, tp.kernel.full_name(), full.kernel.full_name(), bool(torch.equal(y, y1)),
                 _rel(y, y1), err_ref, tol, bool(ok_single and err_ref <= tol and torch.isfinite(y).all()))
    del full, tp
    return res


# ---- process spawning ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, backend: str, fn, kwargs: dict, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    path = os.path.join(out_dir, f"rank{rank}.pt")
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, rank=rank, world_size=world)
        try:
            torch.save({"ok": True, "value": fn(rank, world, **kwargs)}, path)
        finally:
            dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - the parent reports it
        torch.save({"ok": False, "error": traceback.format_exc()}, path)
        raise


def spawn(fn, world: int = 2, backend: str = "gloo", timeout: float = 300.0, **kwargs) -> list:
    """Run ``fn(rank, world, **kwargs)`` in ``world`` fresh processes joined in one process group;
    return each rank's value. A rank that fails or a run past ``timeout`` seconds raises, with the
    rank's traceback, and the other processes are terminated."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out_dir:
        ctx = mp.start_processes(_entry, args=(world, free_port(), backend, fn, kwargs, out_dir), nprocs=world,
                                 join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        try:
            while not ctx.join(timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"spawn: {world} ranks did not finish within {timeout:.0f} s")
        except mp.ProcessRaisedException as e:
            errs = [torch.load(os.path.join(out_dir, f), weights_only=False).get("error") for f in sorted(os.listdir(out_dir))]
            raise RuntimeError("a rank failed:\n" + "\n".join(e for e in errs if e) or str(e)) from None
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
        return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False)["value"] for r in range(world)]


def check_schemes(rank: int, world: int, schemes=TP_SCHEMES, layers=None, m: int = 16, device: str = "cpu") -> list[dict]:
    """Every scheme x layer on this rank; rows for a table (rank 0's are the ones to print)."""
    layers = layers or SMALL
    dev = f"cuda:{rank}" if device == "cuda" else device
    out = []
    for s in schemes:
        for i, layer in enumerate(layers):
            out.append(asdict(check_layer(s, layer, m=m, seed=1000 + i, device=dev)))
    return out
