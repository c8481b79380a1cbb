"""`import qlinear` is light: torch and the core only; discovery imports no provider's heavy library."""

import json
import subprocess
import sys

HEAVY = ("zentorch", "triton", "fbgemm_gpu", "flashinfer", "aiter", "matplotlib")


def _run(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_is_light():
    out = _run(
        "import json, sys, time, torch; t = time.perf_counter(); import qlinear; dt = time.perf_counter() - t\n"
        f"print(json.dumps([dt, [m for m in {HEAVY!r} if m in sys.modules], 'qlinear.registry' in sys.modules]))"
    )
    dt, heavy, registry_loaded = json.loads(out)
    assert heavy == [], f"import qlinear pulled in {heavy}"
    assert not registry_loaded, "import qlinear must not scan providers"
    assert dt < 0.5, f"import qlinear took {dt:.3f}s beyond torch"


def test_discovery_and_selection_import_no_heavy_library():
    out = _run(
        "import sys, qlinear, torch\n"
        "reg = qlinear.get_registry()\n"
        "for fam in qlinear.FAMILIES:\n"
        "    for k in reg.kernels(fam): k.can_implement  # touch the classes\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert out == "[]", f"provider discovery imported {out}"


def test_public_names_resolve():
    import qlinear

    for name in qlinear.__all__:
        assert getattr(qlinear, name) is not None, name


def test_runtime_path_imports_no_benchmark_or_tuning_code(tmp_path):
    """Building and running a QuantLinear (autotune on, so the timing primitive is used) pulls in
    neither the benchmark reporting (qlinear.bench, qlinear.decode_step), the CLI, nor the tuning tools (tools.*)."""
    out = _run(
        "import json, os, sys, torch\n"
        f"os.environ['QLINEAR_CACHE_DIR'] = {str(tmp_path)!r}\n"
        "import qlinear\n"
        "from qlinear.nn import QuantLinear\n"
        "with qlinear.override_settings(autotune=True):\n"
        "    q = QuantLinear.from_linear(torch.nn.Linear(256, 128).bfloat16(), 'w4a16-g128')\n"
        "    q(torch.randn(3, 256, dtype=torch.bfloat16))\n"
        "bad = [m for m in sys.modules if m in ('qlinear.bench', 'qlinear.decode_step', 'qlinear.cli', 'matplotlib', 'tools')\n"
        "       or m.startswith(('qlinear.cli.', 'tools.'))]\n"
        "print(json.dumps([bad, 'qlinear.timing' in sys.modules, len(q.autotune_winners or {}) > 0\n"
        "                  if q.dispatch is not None else None]))"
    )
    bad, timing_loaded, tuned = json.loads(out)
    assert bad == [], f"the runtime path imported {bad}"
    if tuned:  # more than one usable kernel here: autotune timed them with qlinear.timing alone
        assert timing_loaded
