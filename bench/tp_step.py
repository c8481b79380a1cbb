"""Tensor-parallel decode step on 2 GPUs vs 1 (NCCL, CUDA graphs, all-reduce included), and the
2-GPU vs 1-GPU correctness check of every scheme on the Llama-3-8B block's linears.

    python bench/tp_step.py                       # check every scheme, then time W4A16 and FP8
    python bench/tp_step.py --no-check --ms 1,16 --schemes w4a16-g128,fp8-dynamic --layers 4

One step = L Llama-3-8B blocks' linears on M rows: qkv (column, fused q|k|v) -> o (row, all-reduce)
-> + residual -> gate_up (column, fused g|u) -> silu(g) * u -> down (row, all-reduce) -> + residual.
(The attention core and the norms are left out: they are the same on 1 and 2 GPUs per row and
are not what qlinear provides; o takes the rank's q slice in their place.) Each 1-GPU layer is
the same quantized weights with world size 1 (no collective). Timings are CUDA-graph replays of the
whole step, median over ``--reps`` replays, the slower rank's median for 2 GPUs; eager wall time
too. L distinct blocks (default 4: 436 MB of W4A16 / 872 MB of FP8 weights, past the 50 MB L2).
Writes a JSON (``--json``) and prints a table. NVLink multicast stays off (NCCL_NVLS_ENABLE=0,
TORCH_SYMM_MEM_DISABLE_MULTICAST=1), as the lent machines require.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import torch  # noqa: E402

LLAMA3_8B_DIMS = (4096, 14336, 4096, 1024)  # hidden, intermediate, q width, k/v width
SMOKE_DIMS = (256, 256, 256, 128)  # --smoke: tiny shapes on CPU (gloo, no graphs), to test this script


def _block(scheme: str, rank: int, world: int, seed: int, dev, dims=LLAMA3_8B_DIMS):
    """One block's four TP layers (world 1 = the single-GPU layer on the same weights)."""
    from qlinear.layers import quantize_layer_params
    from qlinear.nn import scheme_config
    from qlinear.parallel import ColumnParallelQuantLinear, RowParallelQuantLinear

    HIDDEN, INTER, Q, KV = dims
    torch.manual_seed(seed)
    mods = {}
    for name, cls, n, k, parts in (("qkv", ColumnParallelQuantLinear, Q + 2 * KV, HIDDEN, [Q, KV, KV]),
                                   ("o", RowParallelQuantLinear, HIDDEN, Q, None),
                                   ("gate_up", ColumnParallelQuantLinear, 2 * INTER, HIDDEN, [INTER, INTER]),
                                   ("down", RowParallelQuantLinear, HIDDEN, INTER, None)):
        c = scheme_config(scheme, n, k)
        w = torch.randn(n, k, device=dev) / k ** 0.5
        p = quantize_layer_params(c, w, calib_x=torch.randn(16, k, device=dev).bfloat16())
        mods[name] = cls(c, p, None, rank=rank if world > 1 else 0, world_size=world, output_sizes=parts)
        del w, p
    return mods


def _step(blocks, world: int, dims=LLAMA3_8B_DIMS):
    q, inter = dims[2] // world, dims[1] // world

    def run(x):
        for b in blocks:
            a = b["qkv"](x)[:, :q].contiguous()  # stands in for the attention output (its q slice)
            h = b["o"](a) + x
            g, u = b["gate_up"](h).split(inter, -1)
            x = b["down"](torch.nn.functional.silu(g) * u) + h
        return x

    return run


def _time(fn, x, reps: int, barrier=None) -> tuple[float, float]:
    """(graph median us, eager median us) of one step (on CPU, --smoke: eager twice, no graph)."""
    if x.device.type == "cpu":
        fn(x)
        if barrier:
            barrier()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn(x)
            ts.append((time.perf_counter() - t) * 1e6)
        return statistics.median(ts), statistics.median(ts)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):  # warm up: JIT compiles, autotune, NCCL communicators
            fn(x)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn(x)
    res = {}
    for mode in ("graph", "eager"):
        call = g.replay if mode == "graph" else (lambda: fn(x))
        for _ in range(5):
            call()
        torch.cuda.synchronize()
        if barrier:
            barrier()
        ts = []
        for _ in range(reps):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            call()
            e1.record()
            e1.synchronize()
            ts.append(e0.elapsed_time(e1) * 1000.0)
        res[mode] = statistics.median(ts)
    del g
    return res["graph"], res["eager"]


def bench_rank(rank: int, world: int, schemes, ms, layers: int, reps: int, check: bool, check_schemes_list,
               smoke: bool = False):
    import torch.distributed as dist

    from qlinear.parallel_testing import LLAMA3_8B, SMALL, check_schemes

    dev = torch.device("cpu") if smoke else torch.device("cuda", rank)
    dims = SMOKE_DIMS if smoke else LLAMA3_8B_DIMS
    out = {"check": [], "timing": []}
    if check:
        t0 = time.time()
        out["check"] = check_schemes(rank, world, check_schemes_list, SMALL if smoke else LLAMA3_8B, m=16,
                                     device="cpu" if smoke else "cuda")
        out["check_s"] = time.time() - t0
    dist.barrier()
    for scheme in schemes:
        kernels = {}
        for m in ms:
            x = torch.randn(m, dims[0], device=dev).bfloat16()
            row = {"scheme": scheme, "m": m}
            if rank == 0:  # 1 GPU: the same weights, world size 1, while the other rank waits
                blocks = [_block(scheme, 0, 1, 100 + i, dev, dims) for i in range(layers)]
                kernels["1gpu"] = {k: v.kernel.full_name() for k, v in blocks[0].items()}
                row["graph_us_1"], row["eager_us_1"] = _time(_step(blocks, 1, dims), x, reps)
                del blocks
                if not smoke:
                    torch.cuda.empty_cache()
            dist.barrier()
            blocks = [_block(scheme, rank, world, 100 + i, dev, dims) for i in range(layers)]
            kernels[f"{world}gpu"] = {k: v.kernel.full_name() for k, v in blocks[0].items()}
            g, e = _time(_step(blocks, world, dims), x, reps, barrier=dist.barrier)
            both = [None] * world
            dist.all_gather_object(both, (g, e))
            row[f"graph_us_{world}"] = max(t[0] for t in both)
            row[f"eager_us_{world}"] = max(t[1] for t in both)
            row["kernels"] = kernels
            del blocks
            if not smoke:
                torch.cuda.empty_cache()
            out["timing"].append(row)
    return out if rank == 0 else None


def main(argv=None) -> int:
    from qlinear.parallel_testing import TP_SCHEMES, spawn

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--schemes", default="w4a16-g128,fp8-dynamic", help="schemes to time")
    ap.add_argument("--ms", default="1,16")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--no-check", action="store_true", help="skip the 2-vs-1 GPU check of every scheme")
    ap.add_argument("--check-schemes", default=",".join(TP_SCHEMES))
    ap.add_argument("--timeout", type=float, default=280.0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU over gloo, no graphs: tests this script")
    a = ap.parse_args(argv)
    if not a.smoke and torch.cuda.device_count() < a.world:
        print(f"tp_step: needs {a.world} CUDA devices, found {torch.cuda.device_count()}", file=sys.stderr)
        return 2
    t0 = time.time()
    res = spawn(bench_rank, world=a.world, backend="gloo" if a.smoke else "nccl", timeout=a.timeout,
                schemes=a.schemes.split(","), ms=[int(m) for m in a.ms.split(",")], layers=a.layers, reps=a.reps,
                check=not a.no_check, check_schemes_list=a.check_schemes.split(","), smoke=a.smoke)[0]
    card = "CPU (smoke: tiny shapes, no graphs)" if a.smoke else torch.cuda.get_device_name(0)
    res.update(machine=f"{a.world} x {card}", torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               layers=a.layers, wall_s=round(time.time() - t0, 1))
    ok, w = True, a.world
    if res["check"]:
        print(f"\n{w}-GPU vs 1-GPU, {'tiny' if a.smoke else 'Llama-3-8B'} linears, M=16 ({res.get('check_s', 0):.0f} s)")
        print(f"{'scheme':<22}{'layer':<9}{'split':<8}{'kernel (rank 0)':<48}{'exact':<7}{'err vs 1 GPU':>13}{'err vs ref':>11}{'tol':>7}  ok")
        for r in res["check"]:
            ok &= r["ok"]
            print(f"{r['scheme']:<22}{r['layer']:<9}{r['kind']:<8}{r['kernel']:<48}{str(r['exact']):<7}"
                  f"{r['err_vs_single']:>13.2e}{r['err_vs_reference']:>11.2e}{r['tol']:>7.0e}  {'PASS' if r['ok'] else 'FAIL'}")
    print(f"\nDecode step, {a.layers} {'tiny' if a.smoke else 'Llama-3-8B'} blocks' linears, {res['machine']}, CUDA graphs (eager in brackets), us")
    print(f"{'scheme':<14}{'M':>4}{'1 GPU':>18}{f'{w} GPUs':>18}{'speedup':>9}   kernels ({w} GPUs: qkv/o/gate_up/down)")
    for r in res["timing"]:
        sp = r["graph_us_1"] / r[f"graph_us_{w}"]
        ks = "/".join(v.split(".")[-1] for v in r["kernels"][f"{w}gpu"].values())
        print(f"{r['scheme']:<14}{r['m']:>4}{r['graph_us_1']:>9.1f} ({r['eager_us_1']:>6.0f}){r[f'graph_us_{w}']:>9.1f} "
              f"({r[f'eager_us_{w}']:>6.0f}){sp:>8.2f}x   {ks}")
        r["speedup"] = sp
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print(f"\nwall {res['wall_s']} s; check {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
