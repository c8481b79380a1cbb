"""``qlinear doctor``: platform, installed providers, settings, the measured tables, and every kernel's verdict per family."""

from __future__ import annotations

import json
import os

import torch

from .. import __version__
from ..bench import layer_label
from ..config import LayerConfig
from ..families.schemes import FAMILY_SCHEME, scheme_config
from ..platform import Platform, current_platform
from .common import _Fmt, _kernel_rows, _on_platform, _platform, _platform_arg


def family_configs(n: int = 4096, k: int = 4096, dtype: str | torch.dtype = "bf16") -> dict[str, LayerConfig]:
    """One representative layer per family (what ``doctor`` gates every kernel on)."""
    return {fam: scheme_config(s, n, k, dtype) for fam, s in FAMILY_SCHEME.items()}


def _settings_report(settings) -> dict:
    from dataclasses import asdict

    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("QLINEAR_")}
    return {"values": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()}, "env": env}


def doctor_report(registry=None, platform: Platform | None = None, settings=None,
                  configs: dict[str, LayerConfig] | None = None) -> dict:
    """Everything ``qlinear doctor`` prints, as data: platform, providers (with versions, kernels and
    load errors), settings, and per family every kernel's verdict on a representative layer."""
    from ..registry import get_registry
    from ..selection import select
    from ..settings import get_settings

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
    from ..tables import table_report

    report["tables"] = [dict(t, path=os.path.basename(t["path"])) for t in
                        table_report(plat, {k.full_name(): k for k in reg.kernels()})]
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
    out += ["", "measured tables for this platform (selection reads them; `qlinear tune` makes them):"]
    if not report["tables"]:
        out.append("  none: selection follows priority order (run `qlinear tune` on this card to measure)")
    for t in report["tables"]:
        out.append(f"  {t['source']:<20} {t['path']:<32} {t['device']}, {t['rows']} rows")
        for k, n in sorted(t["stale"].items()):
            out.append(f"    {n} rows of {k} were timed with another version of the kernel: ignored until "
                       "`qlinear tune` re-times them")
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


def add_parser(sub) -> None:
    d = sub.add_parser("doctor", formatter_class=_Fmt, help="platform, providers, settings, and every kernel's verdict",
                       description="Show this machine, the installed providers (distribution, version, kernels;\n"
                                   "a provider that failed to import is shown with its error and skipped), the\n"
                                   "active QLINEAR_* settings, and for each precision family every kernel on a\n"
                                   "representative layer (4096x4096 bf16): selected, available, or why not.")
    _platform_arg(d)
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("-v", "--verbose", action="store_true", help="also list each provider's kernels, and the traceback of one that failed to load")
    d.add_argument("--strict", action="store_true", help="exit 1 if any provider failed to load")
    d.set_defaults(run=cmd_doctor)


def cmd_doctor(a) -> int:
    rep = doctor_report(platform=_platform(a.platform))
    print(json.dumps(rep, indent=2) if a.json else render_doctor(rep, a.verbose))
    return 1 if a.strict and any(p["status"] != "ok" for p in rep["providers"]) else 0
