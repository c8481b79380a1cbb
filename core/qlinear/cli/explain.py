"""``qlinear explain``: one layer (a scheme name and a shape) -> the selector's decision, with every
kernel's reason."""

from __future__ import annotations

import json

from ..families.schemes import SCHEME_HELP, SCHEMES, scheme_config
from .common import _csv, _Fmt, _kernel_rows, _on_platform, _platform, _platform_arg


def known_schemes() -> list[str]:
    return list(SCHEMES) + [s for s in SCHEME_HELP if s not in SCHEMES]


def add_parser(sub) -> None:
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
    e.set_defaults(run=cmd_explain)


def cmd_explain(a) -> int:
    from ..selection import select
    from ..settings import override_settings

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
