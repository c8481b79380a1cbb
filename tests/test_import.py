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
