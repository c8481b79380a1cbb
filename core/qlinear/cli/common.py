"""What the commands share: argparse helpers, platform presets, the per-kernel rows of a selection."""

from __future__ import annotations

import argparse
import contextlib

import torch

from ..platform import PRESETS, Platform, current_platform, make_platform


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


def _platform(preset: str | None) -> Platform:
    if preset in (None, "", "here", "current"):
        return current_platform()
    return make_platform(preset)


@contextlib.contextmanager
def _on_platform(plat: Platform):
    """Make ``plat`` current for code that asks ``current_platform()`` itself (kernels' gates)."""
    from ..platform import simulate_platform

    if plat.simulated:
        with simulate_platform(plat):
            yield plat
    else:
        yield plat


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


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
