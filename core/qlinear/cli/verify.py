"""``qlinear verify``: every kernel usable here through the conformance kit, PASS / FAIL / SKIP."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import time
from typing import Sequence

import torch

from ..config import FAMILIES, LayerConfig
from ..families import all_families
from ..platform import Platform, current_platform, make_platform
from .common import _csv, _default_device, _Fmt


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
    from .. import testing
    from ..registry import get_registry

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


def add_parser(sub) -> None:
    description = ("Run each kernel that is usable here through the conformance kit\n"
                   "(qlinear.testing) on a small embedded set of layers and batch sizes, and\n"
                   "compare with the float64 reference. Prints kernel, case, relative error,\n"
                   "tolerance and PASS / FAIL / SKIP(reason); exits 1 if any case fails.")
    v = sub.add_parser("verify", formatter_class=_Fmt, description=description,
                       help="run every usable kernel against the reference (exit 1 on FAIL)")
    v.add_argument("--family", type=_csv, help=f"comma list of families to check ({', '.join(FAMILIES)})")
    v.add_argument("--kernel", type=_csv, help="comma list of globs on kernel names (e.g. 'torch.*,*Int8*')")
    v.add_argument("--device", default=None, help="device to run on (default: cuda if present, else cpu)")
    v.add_argument("--full", action="store_true", help="the kit's full case list (slower) instead of the embedded subset")
    v.add_argument("--json", action="store_true", help="print the rows as JSON")
    v.set_defaults(run=cmd_verify)


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
