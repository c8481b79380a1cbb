"""``qlinear doctor | explain | verify | bench``: what is installed, what gets picked, is it right, is it fast.

One module per command (``doctor``, ``explain``, ``verify``, ``bench``, ``tune``), each a plain function over
the library (``doctor_report(registry, platform)``, ``verify_rows(...)``, ``qlinear.bench.run_bench``)
so tests and other tools can call it without a subprocess, plus the ``add_parser`` that declares its
flags; ``main(argv)`` only parses arguments and dispatches.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Sequence

from .. import __version__
from ..families.schemes import DTYPES, FAMILY_SCHEME, SCHEME_HELP, SCHEMES, scheme_config  # noqa: F401
from . import bench, doctor, explain, tune, verify
from .bench import bench_schemes, cmd_bench  # noqa: F401
from .common import _default_device, _Fmt, _kernel_rows, _on_platform, _platform  # noqa: F401
from .doctor import cmd_doctor, doctor_report, family_configs, render_doctor  # noqa: F401
from .explain import cmd_explain, explain_text, known_schemes  # noqa: F401
from .tune import cmd_tune  # noqa: F401
from .verify import cmd_verify, render_verify, verify_configs, verify_rows  # noqa: F401

_scheme_config = scheme_config  # the CLI's own parser had this name; there is one grammar now
COMMANDS = {"doctor": cmd_doctor, "explain": cmd_explain, "verify": cmd_verify, "bench": cmd_bench, "tune": cmd_tune}


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
    for command in (doctor, explain, verify, bench, tune):
        command.add_parser(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as e:  # a bad scheme / shape / dtype: the message names the field
        print(f"qlinear {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `qlinear doctor | head`
        return 0
