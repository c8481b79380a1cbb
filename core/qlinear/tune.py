"""``qlinear tune``: time every usable kernel per (scheme, N, K, M) on this card and write the
measured table the selector reads (``qlinear.tables``).

This is a tool, not the runtime: selection reads the JSON it writes and never imports this module.

Method: for each scheme and shape, the selector gates every registered kernel (``evaluate_all``);
each usable one is built on the same weight copies (rotated so the weights leave the cache, as
``qlinear bench`` does) and timed at each M on the same rotated inputs; ``us`` is the median
CUDA-graph replay time per call on CUDA (the GPU time an engine that captures graphs sees; the
eager median stands in where capture fails), the median wall per call on CPU. Emulation kernels
(the reference) are excluded unless asked for.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from .tables import FORMAT, arch_of, config_key, device_of, file_stem, user_dir

# The Llama-3-8B projections: qkv (fused), o, gate_up (fused), down — N x K.
LLAMA3_8B_SHAPES = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336))
MS = (1, 4, 16, 64, 256, 2048)
# The targets; the schemes with measured selection regret first, so a --budget cuts the rest.
SCHEMES = ("w4a16-g128-actorder", "fp8-tensor", "awq-g128", "fp8-dynamic", "w4a16-g128", "int8-dynamic",
           "fp8-block", "w8a16-ch", "int8-dynamic-asym", "nvfp4", "mxfp4", "mxfp8")
DEFAULT_EXCLUDE = ("emulation.*",)


def _timing():
    """The shared timing helpers (``qlinear bench``'s), wherever the refactor puts them."""
    try:
        from . import timing as T  # type: ignore[attr-defined]
    except ImportError:
        from . import bench as T
    from . import bench as B

    return T, B


def _matches(name: str, globs: Sequence[str]) -> bool:
    import fnmatch

    short = name.split(".", 1)[-1]
    return any(fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(short, g) for g in globs)


def run_tune(schemes: Sequence[str] = SCHEMES, shapes: Sequence[tuple[int, int]] = LLAMA3_8B_SHAPES,
             ms: Sequence[int] = MS, device: str = "cuda", *, kernels: Sequence[str] = (),
             exclude: Sequence[str] = DEFAULT_EXCLUDE, max_time: float | None = None, max_copies: int = 8,
             dtype: torch.dtype = torch.bfloat16, log: Callable[[str], None] = lambda s: None) -> dict:
    """Time every usable kernel and return the table (``tables.parse_table`` reads it)."""
    import gc

    from .layers import quantize_layer_params
    from .nn import scheme_config
    from .registry import get_registry
    from .selection import select
    from .settings import override_settings

    T, B = _timing()
    dev = torch.device(device)
    plat = B._platform_for(dev)
    max_time = max_time if max_time is not None else (0.03 if dev.type == "cuda" else 0.2)
    target, min_copies = B.default_rotation(dev)
    rows, errors, skipped, priority = [], [], [], []
    t_start = time.perf_counter()
    for scheme in schemes:
        for n, k in shapes:
            config = scheme_config(scheme, n, k, dtype)
            with override_settings(use_tables=False):  # every usable kernel, and what priority alone picks
                sel = select(config, plat, raise_on_failure=False, evaluate_all=True)
            if sel.kernel is not None:
                priority.append({"scheme": scheme, "n": n, "k": k, "kernel": sel.kernel.full_name()})
            cands = [c for c in sel.viable if not _matches(c.full_name(), exclude)
                     and (not kernels or _matches(c.full_name(), kernels))]
            if not cands:
                skipped.append({"scheme": scheme, "n": n, "k": k, "why": "no usable kernel here"})
                continue
            gen = torch.Generator(device="cpu").manual_seed(0)
            calib = torch.randn(64, k, generator=gen).to(dtype).to(dev)

            def quantized():
                w = (torch.randn(n, k, generator=gen) * 0.02).to(dev)
                return quantize_layer_params(config, w, calib_x=calib)

            params = [quantized()]
            copies = B.copies_needed(B.tensor_bytes(params[0]), target, min_copies, max_copies)
            params += [quantized() for _ in range(copies - 1)]
            xs_by_m = {m: [x.to(dev) for x in B.make_inputs(m, k, 3, dtype, "cpu")] for m in ms}
            for cls in cands:
                name = cls.full_name()
                try:
                    prep = B.prepare_kernel(cls, config, params, dev)
                except Exception as e:  # noqa: BLE001 - one kernel that fails to build is recorded, not fatal
                    errors.append({"scheme": scheme, "n": n, "k": k, "kernel": name, "stage": "prepare",
                                   "error": f"{type(e).__name__}: {str(e)[:300]}"})
                    continue
                for m in ms:
                    try:
                        t = T.time_calls(prep.step_for(xs_by_m[m]), dev, warmup=3, max_time=max_time,
                                         cuda_graph=dev.type == "cuda")
                    except Exception as e:  # noqa: BLE001
                        errors.append({"scheme": scheme, "n": n, "k": k, "m": m, "kernel": name, "stage": "time",
                                       "error": f"{type(e).__name__}: {str(e)[:300]}"})
                        continue
                    us = t.graph_median_us if t.graph_median_us is not None else t.median_us
                    rows.append({"family": config.family, "config": config_key(config), "scheme": scheme,
                                 "n": n, "k": k, "m": m, "kernel": name, "us": round(us, 3),
                                 "eager_us": round(t.median_us, 3),
                                 "timed": "cuda graph" if t.graph_median_us is not None else t.method,
                                 **({"kernel_version": cls.table_version} if cls.table_version else {})})
                del prep
                log(f"{scheme} {n}x{k} {name}: {time.perf_counter() - t_start:.0f} s so far")
            del params
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    reg = get_registry()
    return {
        "format": FORMAT, "arch": arch_of(plat), "device": device_of(plat), "torch": torch.__version__,
        "providers": {p: (i.version or "?") for p, i in sorted(reg.providers.items()) if i.ok},
        "made": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": ("median CUDA-graph replay per call (eager median where capture failed)" if dev.type == "cuda"
                   else "median wall per call") + f"; weights rotated over copies, max_time {max_time}s per point",
        "seconds": round(time.perf_counter() - t_start, 1),
        "rows": rows, "errors": errors, "skipped": skipped, "priority_pick": priority,
    }


def _row_key(r: dict) -> tuple:
    return (r["family"], r["config"], int(r["n"]), int(r["k"]), int(r["m"]), r["kernel"])


def merge(old: dict | None, new: dict) -> dict:
    """``new`` plus the rows of ``old`` (same card) that ``new`` did not re-time, so a table can be
    made in several runs: other shapes, and also other M or kernels of the same shape (a run with
    ``--m`` or ``--kernels`` replaces only what it timed)."""
    if not old or old.get("arch") != new["arch"] or old.get("device") != new["device"]:
        return new
    fresh = {_row_key(r) for r in new["rows"]}
    out = dict(new)
    out["rows"] = [r for r in old.get("rows", []) if _row_key(r) not in fresh] + new["rows"]
    return out


def write_table(table: dict, path: str | os.PathLike, merge_existing: bool = True) -> Path:
    """Write atomically (a reader never sees half a file; concurrent writers: the last one wins
    whole). An unreadable existing file is replaced, not merged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if merge_existing and path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
    data = merge(old, table)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    return path


def split_into_providers(table: dict, merge_existing: bool = True) -> list[Path]:
    """Write each installed provider's rows to ``<its package>/tables/<arch>-<card>.json``, the
    tables that ship with it (run from a checkout with the providers installed editable)."""
    from .registry import get_registry

    reg = get_registry()
    stem = file_stem(table["arch"], table["device"])
    written = []
    for pname, info in sorted(reg.providers.items()):
        mod = sys.modules.get(info.module) if info.ok else None
        if mod is None or not getattr(mod, "__file__", None):
            continue
        mine = [r for r in table["rows"] if r["kernel"].split(".", 1)[0] == pname]
        if not mine:
            continue
        part = {k: v for k, v in table.items() if k not in ("rows", "errors", "skipped", "priority_pick")}
        part["rows"] = mine
        written.append(write_table(part, Path(mod.__file__).parent / "tables" / f"{stem}.json", merge_existing))
    return written


def regret(table: dict) -> list[dict]:
    """Per (scheme, shape): the summed time over M of each kernel; the best single kernel's sum,
    and the per-M best (what the table lets selection reach). A quick check of the targets."""
    by: dict[tuple, dict[int, dict[str, float]]] = {}
    prios = {(p["scheme"], p["n"], p["k"]): p["kernel"] for p in table.get("priority_pick", [])}
    for r in table["rows"]:
        by.setdefault((r.get("scheme") or r["config"], r["n"], r["k"]), {}).setdefault(r["m"], {})[r["kernel"]] = r["us"]
    out = []
    for (scheme, n, k), per_m in sorted(by.items()):
        ms = sorted(per_m)
        full = [name for name in set().union(*per_m.values()) if all(name in per_m[m] for m in ms)]
        if not full:
            continue
        sums = {name: sum(per_m[m][name] for m in ms) for name in full}
        best = min(sums, key=sums.get)
        row = {"scheme": scheme, "n": n, "k": k, "best_single": best, "best_single_sum_us": round(sums[best], 2),
               "per_m_best_sum_us": round(sum(min(per_m[m].values()) for m in ms), 2),
               "per_m_best": {m: min(per_m[m], key=per_m[m].get) for m in ms}}
        prio = prios.get((scheme, n, k))
        if prio in sums:  # what priority order alone would run, against the best single kernel
            row["priority_pick"] = prio
            row["priority_sum_us"] = round(sums[prio], 2)
            row["priority_regret"] = round(sums[prio] / sums[best], 3)
            row["priority_worst_m_regret"] = round(max(per_m[m][prio] / min(per_m[m].values()) for m in ms), 3)
        out.append(row)
    return out


def parse_shapes(text: str) -> list[tuple[int, int]]:
    if text.strip().lower() in ("llama3-8b", "llama-3-8b"):
        return list(LLAMA3_8B_SHAPES)
    out = []
    for part in text.split(","):
        try:
            n, k = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ValueError(f"--shapes: {part!r} is not NxK (e.g. 4096x14336) or llama3-8b") from None
        out.append((n, k))
    return out


def default_out(device: str) -> Path:
    """``$QLINEAR_CACHE_DIR/tables/<arch>-<card>.json``: where selection finds a user's own table."""
    plat = _timing()[1]._platform_for(torch.device(device))
    return user_dir() / f"{file_stem(arch_of(plat), device_of(plat))}.json"


def summary(table: dict) -> str:
    lines = [f"{table['device']} ({table['arch']}), torch {table['torch']}: {len(table['rows'])} rows in "
             f"{table['seconds']} s; {len(table['errors'])} errors, {len(table['skipped'])} skipped"]
    for r in regret(table):
        prio = (f"; priority pick {r['priority_pick']} {r['priority_regret']:.2f}x (worst M "
                f"{r['priority_worst_m_regret']:.2f}x)") if "priority_pick" in r else ""
        lines.append(f"  {r['scheme']:<20} {r['n']:>5}x{r['k']:<5} best single {r['best_single']} "
                     f"{r['best_single_sum_us']:.1f} us summed; per-M best {r['per_m_best_sum_us']:.1f} us{prio}")
    for e in table["errors"][:20]:
        lines.append(f"  error {e['scheme']} {e['n']}x{e['k']} {e['kernel']} {e.get('m', '')}: {e['error'][:160]}")
    return "\n".join(lines)



def main(a) -> int:
    """``qlinear tune`` (arguments parsed by ``qlinear.cli``). The table is written after every
    (scheme, shape), so a run cut short (``--budget``, a timeout) keeps what it measured."""
    if a.from_file:  # split an existing table (e.g. one made on a GPU machine) into the providers
        table = json.loads(Path(a.from_file).read_text())
        check_table(table, a.from_file)
        for p in split_into_providers(table, merge_existing=not a.replace):
            print(f"wrote {p}")
        return 0
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    schemes = a.schemes or list(SCHEMES)
    shapes = parse_shapes(a.shapes)
    ms = a.m or list(MS)
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out) if a.out else default_out(device)
    if a.out and (a.out.endswith("/") or out.is_dir()):  # a directory: the card's file name in it
        out = out / default_out(device).name
    log = (lambda s: print(s, file=sys.stderr)) if not a.quiet else (lambda s: None)
    t0 = time.perf_counter()
    table, left = None, []
    for scheme in schemes:
        for shape in shapes:
            if a.budget is not None and table is not None and time.perf_counter() - t0 > a.budget:
                left.append(f"{scheme} {shape[0]}x{shape[1]}")
                continue
            part = run_tune([scheme], [shape], ms, device, kernels=a.kernels or (),
                            exclude=a.exclude if a.exclude is not None else DEFAULT_EXCLUDE, max_time=a.max_time,
                            max_copies=a.max_copies, dtype=dtype, log=log)
            if table is None:
                table = part
            else:
                for key in ("rows", "errors", "skipped", "priority_pick"):
                    table[key] = table[key] + part[key]
            table["seconds"] = round(time.perf_counter() - t0, 1)
            write_table(table, out, merge_existing=not a.replace)
    if table is None:
        print("qlinear tune: nothing was timed", file=sys.stderr)
        return 1
    print(summary(table))
    if left:
        print(f"not timed (--budget {a.budget} s reached): {', '.join(left)}")
    print(f"wrote {out}")
    if a.split_into_providers:
        for p in split_into_providers(table, merge_existing=not a.replace):
            print(f"wrote {p}")
    return 0 if table["rows"] else 1


def check_table(table: dict, where: str) -> None:
    from .tables import parse_table

    parse_table(table, where)  # a malformed file: ValueError naming the field
