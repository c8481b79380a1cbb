"""``qlinear tune``: time every usable kernel per layer shape and M, and write the measured table
selection reads (the work is ``qlinear.tune``, imported only when the command runs)."""

from __future__ import annotations

import textwrap

from .common import _csv, _csv_ints, _Fmt


def add_parser(sub) -> None:
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
    t.set_defaults(run=cmd_tune)


def cmd_tune(a) -> int:
    from .. import tune

    return tune.main(a)
