"""``qlinear doctor | explain | verify | bench``: what is installed, what gets picked, is it right, is it fast.

Each subcommand is a plain function over the library (``doctor_report(registry, platform)``,
``verify_rows(...)``, ``bench.run_bench(...)``) so tests and other tools can call them without a
subprocess; ``main(argv)`` only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import re
import sys
import textwrap
import time
from typing import Sequence

import torch

from . import __version__
from .bench import layer_label
from .config import FAMILIES, LayerConfig
from .families import all_families
from .families.schemes import FAMILY_SCHEME, SCHEME_HELP, SCHEMES, scheme_config
from .families.schemes import parse_dtype as _dtype
from .platform import PRESETS, Platform, current_platform, make_platform

_scheme_config = scheme_config  # the name this module's own parser had; there is one grammar now


def known_schemes() -> list[str]:
    return list(SCHEMES) + [s for s in SCHEME_HELP if s not in SCHEMES]


def family_configs(n: int = 4096, k: int = 4096, dtype: str | torch.dtype = "bf16") -> dict[str, LayerConfig]:
    """One representative layer per family (what ``doctor`` gates every kernel on)."""
    return {fam: scheme_config(s, n, k, dtype) for fam, s in FAMILY_SCHEME.items()}


# ============================================================================================
# Platforms
# ============================================================================================
def _platform(preset: str | None) -> Platform:
    if preset in (None, "", "here", "current"):
        return current_platform()
    return make_platform(preset)


@contextlib.contextmanager
def _on_platform(plat: Platform):
    """Make ``plat`` current for code that asks ``current_platform()`` itself (kernels' gates)."""
    from .platform import simulate_platform

    if plat.simulated:
        with simulate_platform(plat):
            yield plat
    else:
        yield plat


# ============================================================================================
# doctor
# ============================================================================================
def _settings_report(settings) -> dict:
    from dataclasses import asdict

    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("QLINEAR_")}
    return {"values": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()}, "env": env}


def _kernel_rows(sel) -> list[dict]:
    rows = []
    seen = set()
    for k in sel.order:
        n = k.full_name()
        seen.add(n)
        if k is sel.kernel:
            status, reason = "selected", None
        elif k in sel.viable:
            status, reason = "available", None
        else:
            status, reason = "no", sel.reasons.get(n, "")
        rows.append({"kernel": n, "priority": k.priority, "backend": k.backend, "status": status, "reason": reason})
    for n, r in sel.reasons.items():  # dropped before ordering: disabled, backend filter, batch invariance
        if n not in seen:
            rows.append({"kernel": n, "priority": None, "backend": None, "status": "no", "reason": r})
    return rows


def doctor_report(registry=None, platform: Platform | None = None, settings=None,
                  configs: dict[str, LayerConfig] | None = None) -> dict:
    """Everything ``qlinear doctor`` prints, as data: platform, providers (with versions, kernels and
    load errors), settings, and per family every kernel's verdict on a representative layer."""
    from .registry import get_registry
    from .selection import select
    from .settings import get_settings

    reg = registry if registry is not None else get_registry()
    plat = platform or current_platform()
    st = settings or get_settings()
    report: dict = {
        "qlinear": __version__, "torch": torch.__version__, "platform": plat.describe(),
        "simulated": plat.simulated, "settings": _settings_report(st), "providers": [], "families": [],
    }
    for name, info in sorted(reg.providers.items()):
        dist, version = info.distribution, info.version
        if dist is None:  # registered in-process (add_provider): find the distribution that ships the module
            dist, version = _distribution_of(info.module)
        report["providers"].append({
            "name": name, "module": info.module, "distribution": dist, "version": version,
            "status": "ok" if info.ok else "skipped", "error": info.error, "traceback": info.traceback,
            "kernels": [k.full_name() for k in info.kernels],
        })
    with _on_platform(plat):
        for fam, config in (configs or family_configs()).items():
            sel = select(config, plat, st, kernels=reg.kernels(fam, plat.kind), raise_on_failure=False,
                         evaluate_all=True)
            report["families"].append({
                "family": fam, "scheme": FAMILY_SCHEME.get(fam), "config": config.describe(), "layer": layer_label(config),
                "selected": sel.kernel.full_name() if sel.kernel else None, "warnings": list(sel.warnings),
                "kernels": _kernel_rows(sel),
            })
    return report


def _distribution_of(module: str) -> tuple[str | None, str | None]:
    import importlib.metadata as md

    try:
        dists = md.packages_distributions().get(module.split(".")[0], [])
        return (dists[0], md.version(dists[0])) if dists else (None, None)
    except Exception:  # noqa: BLE001 - metadata lookups are best effort
        return None, None


def render_doctor(report: dict, verbose: bool = False) -> str:
    out = [f"qlinear {report['qlinear']}  (torch {report['torch']})",
           f"platform: {report['platform']}", ""]
    provs = report["providers"]
    out.append(f"providers ({len(provs)} found, {sum(p['status'] != 'ok' for p in provs)} skipped):")
    if not provs:
        out.append("  none installed: `pip install qlinear[emulation]` (or another provider) to get kernels")
    for p in provs:
        dist = f"{p['distribution'] or p['module']} {p['version'] or ''}".strip()
        if p["status"] == "ok":
            out.append(f"  {p['name']:<12} {dist:<32} ok, {len(p['kernels'])} kernels")
            if verbose:
                out += [f"      {k}" for k in p["kernels"]]
        else:
            out.append(f"  {p['name']:<12} {dist:<32} SKIPPED (failed to load): {p['error']}")
            if verbose and p.get("traceback"):
                out += [f"      {line}" for line in p["traceback"].rstrip().splitlines()]
    st = report["settings"]
    out += ["", "settings (QLINEAR_* environment):"]
    vals = st["values"]
    out.append("  " + "  ".join(f"{k}={_show(v)}" for k, v in vals.items()))
    out.append("  set here: " + (", ".join(f"{k}={v}" for k, v in st["env"].items()) or "none (all defaults)"))
    out += ["", "kernels per family (gated on the layer shown; selected = what this machine picks):"]
    for f in report["families"]:
        out.append(f"  {f['family']:<10} {f['scheme']}: {f['layer']}" + (f"\n             {f['config']}" if verbose else ""))
        out += [f"    warning: {w}" for w in f["warnings"]]
        if not f["kernels"]:
            out.append("    no kernel registered for this family (no provider offers one)")
        for r in f["kernels"]:
            verdict = r["status"] if r["status"] != "no" else f"no: {r['reason']}"
            prio = "" if r["priority"] is None else f"prio {r['priority']:>4}"
            out.append(f"    {r['kernel']:<52} {prio:<9} {verdict}")
        if f["kernels"] and f["selected"] is None:
            out.append("    -> NO usable kernel for this layer here")
    return "\n".join(out)


def _show(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v)) or "-"
    if isinstance(v, dict):
        return ",".join(f"{a}={b}" for a, b in v.items()) or "-"
    return str(v)


# ============================================================================================
# verify
# ============================================================================================
def verify_configs() -> dict[str, list[LayerConfig]]:
    """A modest set per family (each descriptor's ``quick_configs``: about 4 layers, unaligned shapes
    where the format allows, and one with K = 4096, the depth of real models, where int32 / int16
    accumulation limits show) so that ``verify`` runs every kernel in well under a minute on a small
    CPU. ``--full`` uses the kit's."""
    return {name: f.quick_configs() for name, f in all_families().items()}


def verify_rows(families: Sequence[str] | None = None, kernels: Sequence[str] | None = None, device: str = "cpu",
                full: bool = False, ms: Sequence[int] = (1, 33), registry=None, platform: Platform | None = None,
                on_row=None) -> tuple[list[dict], list[dict]]:
    """Run the conformance kit on every usable kernel. Returns (rows, unusable): one row per
    (kernel, case) with status PASS / FAIL / SKIP, and the kernels whose ``is_supported`` said no."""
    from . import testing
    from .registry import get_registry

    reg = registry if registry is not None else get_registry()
    plat = platform or current_platform()
    if torch.device(device).type == "cpu" and plat.kind != "cpu":
        plat = make_platform(None, kind="cpu", capability=None, device_name="")
    fams = list(families or FAMILIES)
    mine = verify_configs()
    rows, unusable = [], []
    for fam in fams:
        for kcls in reg.kernels(fam, plat.kind):
            name = kcls.full_name()
            if kernels and not any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(kcls.__name__, p)
                                   for p in kernels):
                continue
            ok, why = _supported(kcls, plat)
            if not ok:
                unusable.append({"kernel": name, "reason": why or "is_supported said no"})
                continue
            if full:
                cases = testing.cases_for(kcls)
            else:  # one M per layer, alternating, so each kernel still sees M=1 and M>1, with and without bias
                cases = [testing.Case(c, ms[i % len(ms)], with_bias=(i // 2) % 2 == 0) for i, c in enumerate(mine[fam])]
            for case in cases:
                row = _verify_case(testing, kcls, case, device)
                rows.append(row)
                if on_row:
                    on_row(row)
    return rows, unusable


def _supported(kcls, plat) -> tuple[bool, str | None]:
    """``is_supported`` as a verdict; a gate that raises is a "no" with the error as the reason."""
    try:
        r = kcls.is_supported(plat)
    except Exception as e:  # noqa: BLE001
        return False, f"is_supported raised {type(e).__name__}: {e}"
    return r if isinstance(r, tuple) else (bool(r), None)


_ERR_RE = re.compile(r"relative error ([0-9.eE+-]+) > tolerance ([0-9.eE+-]+)")


def _verify_case(testing, kcls, case, device) -> dict:
    row = {"kernel": kcls.full_name(), "case": str(case), "error": None,
           "tolerance": testing.TOLERANCE.get(case.config.family), "status": "PASS", "reason": None}
    t0 = time.perf_counter()
    try:
        r = testing.run_case(kcls, case, device=device, skip=lambda reason: None)
        if not r.ran:
            row.update(status="SKIP", reason=r.reason)
        else:
            row.update(error=r.error, tolerance=r.tolerance)
    except AssertionError as e:  # over tolerance, wrong shape / dtype, NaN
        m = _ERR_RE.search(str(e))
        if m:
            row.update(error=float(m.group(1)), tolerance=float(m.group(2)))
        row.update(status="FAIL", reason=str(e).splitlines()[0].removeprefix(f"{case}: "))
    except Exception as e:  # noqa: BLE001 - a kernel that crashes fails, it does not stop the run
        row.update(status="FAIL", reason=f"raised {type(e).__name__}: {e}")
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def render_verify(rows: list[dict], unusable: list[dict]) -> str:
    w = max([len(r["kernel"]) for r in rows] + [6])
    cw = max([len(r["case"]) for r in rows] + [4])
    out = [f"{'kernel':<{w}}  {'case':<{cw}}  {'rel.err':>9}  {'tol':>7}  result"]
    for r in rows:
        err = "" if r["error"] is None else f"{r['error']:.2e}"
        tol = "" if r["tolerance"] is None else f"{r['tolerance']:.0e}"
        res = r["status"] + (f" ({r['reason']})" if r["status"] != "PASS" and r["reason"] else "")
        out.append(f"{r['kernel']:<{w}}  {r['case']:<{cw}}  {err:>9}  {tol:>7}  {res}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    nk = len({r["kernel"] for r in rows})
    out.append(f"\n{nk} kernels, {len(rows)} cases: {counts['PASS']} passed, {counts['FAIL']} failed, "
               f"{counts['SKIP']} skipped (kernel declined the layer)")
    if unusable:
        out.append(f"not usable on this machine ({len(unusable)}):")
        out += [f"  {u['kernel']}: {u['reason']}" for u in unusable]
    return "\n".join(out)


# ============================================================================================
# argparse
# ============================================================================================
class _Fmt(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks; appends "(default: X)" only where there is a real default."""

    def _get_help_string(self, action):
        h = action.help or ""
        d = action.default
        if d not in (None, False, True, argparse.SUPPRESS) and "default" not in h and action.option_strings:
            h += " (default: %(default)s)"
        return h


def _csv_ints(s: str) -> list[int]:
    try:
        vals = [int(v) for v in s.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,8,32, got {s!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return vals


def _csv(s: str) -> list[str]:
    return [v.strip() for v in s.split(",") if v.strip()]


def _platform_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", metavar="PRESET", choices=sorted(PRESETS),
                   help="simulate another machine instead of this one: " + ", ".join(sorted(PRESETS))
                   + " (gates and selection only; nothing runs there)")


def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="qlinear", formatter_class=_Fmt,
        description="qlinear: quantized-linear kernels for LLM inference.\n"
                    "Find out what is installed and usable (doctor), which kernel a layer gets and why\n"
                    "(explain), whether every usable kernel is numerically right here (verify), and how\n"
                    "fast they are against bf16 F.linear (bench).",
        epilog=textwrap.dedent("""\
            examples:
              qlinear doctor                      # providers, settings, every kernel's verdict
              qlinear doctor --platform sm90      # ... as an H100 would see it
              qlinear explain w4a16-g128 --n 4096 --k 4096 --platform sm90
              qlinear verify --family int8        # conformance kit, exit 1 on any FAIL
              qlinear bench --schemes int8-dynamic,w4a16-g128 --m 1,8 --out results/
            settings come from QLINEAR_* environment variables (see `qlinear doctor`)."""))
    top.add_argument("--version", action="version", version=f"qlinear {__version__}")
    sub = top.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("doctor", formatter_class=_Fmt, help="platform, providers, settings, and every kernel's verdict",
                       description="Show this machine, the installed providers (distribution, version, kernels;\n"
                                   "a provider that failed to import is shown with its error and skipped), the\n"
                                   "active QLINEAR_* settings, and for each precision family every kernel on a\n"
                                   "representative layer (4096x4096 bf16): selected, available, or why not.")
    _platform_arg(d)
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("-v", "--verbose", action="store_true", help="also list each provider's kernels, and the traceback of one that failed to load")
    d.add_argument("--strict", action="store_true", help="exit 1 if any provider failed to load")

    e = sub.add_parser("explain", formatter_class=_Fmt, help="one layer -> which kernel is chosen, and why each other one is not",
                       description="Describe one layer by a scheme name and shape, and print the selector's\n"
                                   "decision: the chosen kernel and each other kernel's reason.\n\nschemes:\n"
                                   + "\n".join(f"  {k:<18} {v}" for k, v in SCHEME_HELP.items())
                                   + "\n  also: " + ", ".join(s for s in known_schemes() if s not in SCHEME_HELP))
    e.add_argument("scheme", help="scheme name, e.g. w4a16-g128, fp8-dynamic, nvfp4 (list above)")
    e.add_argument("--n", type=int, default=4096, help="output features N")
    e.add_argument("--k", type=int, default=4096, help="input features K")
    e.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"], help="activation dtype")
    _platform_arg(e)
    e.add_argument("--backend", help="like QLINEAR_LINEAR_BACKEND for this call (e.g. torch, or auto,mp=marlin)")
    e.add_argument("--disable", type=_csv, help="like QLINEAR_DISABLED_KERNELS: comma list of names/globs")
    e.add_argument("--force", type=_csv, help="like QLINEAR_FORCE_KERNEL: try these kernels first")
    e.add_argument("--regime", choices=["decode", "prefill", "mixed"], default=None,
                   help="the M range the layer is chosen for where a measured table applies (default QLINEAR_REGIME or mixed)")
    e.add_argument("--json", action="store_true", help="print the decision as JSON")

    v = sub.add_parser("verify", formatter_class=_Fmt, help="run every usable kernel against the reference (exit 1 on FAIL)",
                       description="Run each kernel that is usable here through the conformance kit\n"
                                   "(qlinear.testing) on a small embedded set of layers and batch sizes, and\n"
                                   "compare with the float64 reference. Prints kernel, case, relative error,\n"
                                   "tolerance and PASS / FAIL / SKIP(reason); exits 1 if any case fails.")
    v.add_argument("--family", type=_csv, help=f"comma list of families to check ({', '.join(FAMILIES)})")
    v.add_argument("--kernel", type=_csv, help="comma list of globs on kernel names (e.g. 'torch.*,*Int8*')")
    v.add_argument("--device", default=None, help="device to run on (default: cuda if present, else cpu)")
    v.add_argument("--full", action="store_true", help="the kit's full case list (slower) instead of the embedded subset")
    v.add_argument("--json", action="store_true", help="print the rows as JSON")

    b = sub.add_parser("bench", formatter_class=_Fmt, help="time usable kernels over M against bf16 F.linear (JSON + PNG)",
                       description=textwrap.dedent("""\
                           Time every usable kernel for each scheme over batch sizes M, beside the bf16
                           F.linear baseline, on the same inputs, and write JSON + a PNG plot to --out.
                           Method (BENCHMARKING.md): warmup first (JIT out of timing), median of timed
                           calls capped by --max-time, 4 random inputs rotated, weights rotated over
                           enough copies to exceed the cache (CPU >= 6 copies and >= 96 MiB, GPU > 2x
                           L2). What is timed is kernel.apply_weights(layer, x) (no input checks). GPU:
                           triton.testing.do_bench median if triton is there, else CUDA events;
                           --cuda-graph adds graph-replay figures. Each point also shows the memory
                           floor = bytes the format must move / bandwidth (measured or --bandwidth)."""))
    b.add_argument("--n", type=int, default=4096, help="output features N")
    b.add_argument("--k", type=int, default=4096, help="input features K")
    b.add_argument("--m", type=_csv_ints, default=None, help="comma list of M (default 1,8,32,128 on CPU; 1,16,128,1024,4096 on GPU)")
    b.add_argument("--schemes", type=_csv, default=None,
                   help="comma list of schemes (see `qlinear explain -h`); default: w8a16-ch,w4a16-g128,int8-dynamic,"
                        "fp8-dynamic on CPU, plus fp8-block,nvfp4,mxfp4,mxfp8 on GPU")
    b.add_argument("--families", type=_csv, default=None, help="comma list of families; each adds its representative scheme")
    b.add_argument("--kernels", type=_csv, default=None, help="only kernels matching these globs (name or provider.Name)")
    b.add_argument("--exclude", type=_csv, default=None, help="drop kernels matching these globs (e.g. 'emulation.*')")
    b.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"], help="activation / baseline dtype")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    b.add_argument("--out", default="bench/out", help="directory for the JSON and PNG")
    b.add_argument("--tag", default=None, help="file name stem (default bench-<device>-N<n>K<k>)")
    b.add_argument("--max-time", type=float, default=None, help="seconds of timed calls per (kernel, M); default 1.0 CPU, 0.3 GPU")
    b.add_argument("--warmup", type=int, default=3, help="warmup calls before timing (JIT/compile happens here)")
    b.add_argument("--bandwidth", type=float, default=None, help="memory bandwidth in GB/s for the floor (default: measured)")
    b.add_argument("--tflops", type=float, default=None, help="matrix rate in TFLOP/s for a compute floor (default: none)")
    b.add_argument("--rotate-mb", type=float, default=None, help="weight copies must total at least this many MiB (default 96 CPU, 2x L2 GPU)")
    b.add_argument("--max-copies", type=int, default=64, help="cap on weight copies (tiny layers)")
    b.add_argument("--cuda-graph", action="store_true", help="GPU: also time CUDA-graph replay (no launch gaps)")
    b.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    b.add_argument("--no-plot", action="store_true", help="write JSON only")
    b.add_argument("--model", default=None, choices=["llama3-8b", "tiny"],
                   help="the decode-step benchmark instead of one layer: every linear of --layers layers of this "
                        "model once per step (CUDA graph + eager), speedup over the bf16 step")
    b.add_argument("--layers", type=int, default=None, help="--model: transformer layers per step (default 8 on GPU, 1 on CPU)")
    b.add_argument("--reps", type=int, default=20, help="--model: timed steps per point (median)")
    b.add_argument("--backend", default=None, help="--model: like QLINEAR_LINEAR_BACKEND while the layers are built")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="force the stderr progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (default: on when stderr is a TTY)")
    _tune_parser(sub)
    return top


# ============================================================================================
# commands
# ============================================================================================
def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def cmd_doctor(a) -> int:
    rep = doctor_report(platform=_platform(a.platform))
    print(json.dumps(rep, indent=2) if a.json else render_doctor(rep, a.verbose))
    return 1 if a.strict and any(p["status"] != "ok" for p in rep["providers"]) else 0


def cmd_explain(a) -> int:
    from .selection import select
    from .settings import override_settings

    config = scheme_config(a.scheme, a.n, a.k, a.dtype)
    plat = _platform(a.platform)
    changes = {}
    if a.backend:
        changes["linear_backend"] = a.backend
    if a.disable:
        changes["disabled_kernels"] = tuple(a.disable)
    with override_settings(**changes), _on_platform(plat):
        sel = select(config, plat, force=a.force, raise_on_failure=False, evaluate_all=True, regime=a.regime)
    if a.json:
        print(json.dumps({"scheme": a.scheme, "config": config.describe(), "platform": plat.describe(),
                          "selected": sel.kernel.full_name() if sel.kernel else None,
                          "warnings": sel.warnings, "kernels": _kernel_rows(sel),
                          "table": sel.table.explain_lines() if sel.table is not None else None}, indent=2))
    else:
        print(explain_text(sel))
        print(f"\n=> {sel.kernel.full_name()}" if sel.kernel else "\n=> no kernel can run this layer here")
    return 0 if sel.kernel else 1


def explain_text(sel) -> str:
    """``Selection.explain()``, minus its "no kernel is registered" line when kernels were in fact
    tried but none was rejected (it tests ``reasons`` alone; a lone selected kernel has none)."""
    text = sel.explain()
    if sel.order:
        text = "\n".join(ln for ln in text.splitlines() if "kernel is registered (is a provider installed?" not in ln)
    return text


def cmd_verify(a) -> int:
    device = a.device or _default_device()
    fams = a.family
    if fams:
        bad = [f for f in fams if f not in FAMILIES]
        if bad:
            raise ValueError(f"--family: unknown {bad}; families: {FAMILIES}")
    live = sys.stderr.isatty() and not a.json
    on_row = (lambda r: print(f"  {r['status']:<4} {r['kernel']} {r['case']}", file=sys.stderr)) if live else None
    rows, unusable = verify_rows(fams, a.kernel, device, a.full, on_row=on_row)
    if a.json:
        print(json.dumps({"device": device, "rows": rows, "unusable": unusable}, indent=2))
    else:
        print(render_verify(rows, unusable))
    if not rows:
        print("nothing ran: no usable kernel matched (see `qlinear doctor`)", file=sys.stderr)
        return 1
    return 1 if any(r["status"] == "FAIL" for r in rows) else 0


def bench_schemes(a, device: str) -> list[str]:
    names = list(a.schemes or [])
    names += [FAMILY_SCHEME[f] if f in FAMILY_SCHEME else f for f in (a.families or [])]
    if not names:
        names = ["w8a16-ch", "w4a16-g128", "int8-dynamic", "fp8-dynamic"]
        if torch.device(device).type == "cuda":
            names += ["fp8-block", "nvfp4", "mxfp4", "mxfp8"]
    return list(dict.fromkeys(names))


def cmd_bench(a) -> int:
    from . import bench as B

    device = a.device or _default_device()
    dev = torch.device(device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.model:
        return bench_model(a, device)
    ms = a.m or ([1, 16, 128, 1024, 4096] if dev.type == "cuda" else [1, 8, 32, 128])
    schemes = [(s, scheme_config(s, a.n, a.k, a.dtype)) for s in bench_schemes(a, device)]
    spec = B.BenchSpec(
        n=a.n, k=a.k, ms=ms, schemes=schemes, kernels=a.kernels or (), exclude=a.exclude or (), device=device,
        baseline_dtype=_dtype(a.dtype), max_time=a.max_time or (0.3 if dev.type == "cuda" else 1.0),
        warmup=a.warmup, rotate_bytes=int(a.rotate_mb * B.MiB) if a.rotate_mb else None, max_copies=a.max_copies,
        bandwidth_gbs=a.bandwidth, tflops=a.tflops, cuda_graph=a.cuda_graph)
    if not a.no_plot:  # fail before the long run, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("qlinear bench: the PNG needs matplotlib: `pip install 'qlinear[plot]'`, or pass --no-plot",
                  file=sys.stderr)
            return 2
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, a.tag or f"bench-{dev.type}-N{a.n}K{a.k}")
    progress = B.Progress(0, enabled=a.progress)
    result = B.run_bench(spec, progress, log=progress.write)
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    print(B.format_table(result))
    print(f"\nwrote {stem}.json")
    if not a.no_plot:
        B.plot(result, stem + ".png")
        print(f"wrote {stem}.png")
    failed = [r for s in result["schemes"] for r in s["results"] if r.get("error")]
    return 1 if failed else 0


def bench_model(a, device: str) -> int:
    from . import decode_step as D
    from .settings import override_settings

    dev = torch.device(device)
    ms = a.m or ([1, 16, 32, 64, 128, 256, 512, 2048] if dev.type == "cuda" else [1, 8, 32])
    spec = D.StepSpec(model=a.model, schemes=bench_schemes(a, device), ms=ms, layers=a.layers, device=device,
                      reps=a.reps)
    with override_settings(**({"linear_backend": a.backend} if a.backend else {})):
        result = D.run(spec, log=lambda s: print(s, file=sys.stderr))
    print(D.format_table(result))
    paths = D.write(result, a.out, a.tag) if not a.no_plot else D.write_json(result, a.out, a.tag)
    for p in paths:
        print(f"wrote {p}")
    failed = [s for s in result["schemes"] if "error" in s] + [
        r for s in result["schemes"] for r in s.get("results", []) if r.get("error") or r.get("nonfinite_outputs")]
    return 1 if failed else 0



def _tune_parser(sub) -> None:
    """``qlinear tune``: the verb's flags; the tool is ``qlinear.tune`` (imported only when it runs)."""
    t = sub.add_parser("tune", formatter_class=_Fmt, help="time every usable kernel per layer shape and M; write the table selection reads",
                       description=textwrap.dedent("""\
                           Time every usable kernel of each scheme over layer shapes (default: the
                           Llama-3-8B projections) and M (default 1,4,16,64,256,2048), and write the
                           measured table (JSON) that `select` / QuantLinear use on this card: the kernel
                           fastest over the layer's declared regime wins, and kernels sharing one weight
                           layout take the M they are fastest at. Default output: the user table in
                           $QLINEAR_CACHE_DIR/tables/<arch>-<card>.json (used at once). CUDA: CUDA-graph
                           replay medians. Rows of an existing file for other shapes/schemes are kept."""))
    t.add_argument("--schemes", type=_csv, default=None, help="comma list of schemes (default: every scheme of the issue's targets)")
    t.add_argument("--shapes", default="llama3-8b", help="llama3-8b or a comma list of NxK (e.g. 4096x4096,4096x14336)")
    t.add_argument("--m", type=_csv_ints, default=None, help="comma list of M (default 1,4,16,64,256,2048)")
    t.add_argument("--kernels", type=_csv, default=None, help="only kernels matching these globs")
    t.add_argument("--exclude", type=_csv, default=None, help="drop kernels matching these globs (default: emulation.*)")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    t.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"], help="activation dtype")
    t.add_argument("--out", default=None, help="table file (or directory) to write (default: the user table for this card)")
    t.add_argument("--split-into-providers", action="store_true",
                   help="also write each provider's rows into <provider package>/tables/ (the tables that ship)")
    t.add_argument("--replace", action="store_true", help="overwrite the output instead of merging its other rows")
    t.add_argument("--from", dest="from_file", default=None,
                   help="time nothing: split this existing table into the providers (with --split-into-providers)")
    t.add_argument("--budget", type=float, default=None,
                   help="seconds: start no new (scheme, shape) after this; the table keeps what was measured")
    t.add_argument("--max-time", type=float, default=None, help="seconds of timing per (kernel, M); default 0.03 GPU, 0.2 CPU")
    t.add_argument("--max-copies", type=int, default=8, help="cap on rotated weight copies per layer")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def cmd_tune(a) -> int:
    from . import tune

    return tune.main(a)


COMMANDS = {"doctor": cmd_doctor, "explain": cmd_explain, "verify": cmd_verify, "bench": cmd_bench, "tune": cmd_tune}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except ValueError as e:  # a bad scheme / shape / dtype: the message names the field
        print(f"qlinear {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `qlinear doctor | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
