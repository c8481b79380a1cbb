"""Measured kernel tables (qlinear.tables): look-up, fallback to priority, regime choice, per-M
dispatch within one weight layout, and what ``explain`` shows. Stand-in kernels and synthetic tables;
the stand-ins that run compute the reference result, so a wrong dispatch or a wrong answer fails."""

import json

import pytest
import torch

import qlinear
from qlinear import tables
from qlinear.formats import reference_linear
from qlinear.kernel import MPLinearKernel
from qlinear.nn import QuantLinear, scheme_config
from qlinear.platform import make_platform, simulate_platform
from qlinear.selection import select
from qlinear.settings import override_settings
from qlinear.testing import StandIn

N, K = 256, 512
CALLS: list[str] = []
ATTACHED: list[str] = []


class _Runs(StandIn, MPLinearKernel):
    """A stand-in that runs: the reference result, and a record of which kernel ran."""

    provider = "standin"

    @classmethod
    def is_supported(cls, platform=None):
        return True, None

    def attach_shared(self, layer):
        ATTACHED.append(type(self).__name__)

    def apply_weights(self, layer, x, bias=None):
        CALLS.append(type(self).__name__)
        params = {n: getattr(layer, n) for n in ("weight_packed", "weight_scale")}
        return reference_linear(self.config, params, x, bias).to(x.dtype)


class HighPrio(_Runs):
    priority = 90


class SharedA(_Runs):
    priority = 50
    weight_layout = "standin-shared"


class SharedB(_Runs):
    priority = 40
    weight_layout = "standin-shared"


class OwnLayout(_Runs):
    priority = 30


KERNELS = [HighPrio, SharedA, SharedB, OwnLayout]
CONFIG = scheme_config("w4a16-g128", N, K)


def table(rows, device="Test Card", arch="sm90"):
    return {"format": 1, "arch": arch, "device": device, "torch": torch.__version__, "providers": {},
            "rows": [{"family": "mp", "config": tables.config_key(CONFIG), "n": n, "k": k, "m": m,
                      "kernel": f"standin.{name}", "us": us} for (n, k, m, name, us) in rows]}


def write(tmp_path, data, name="sm90-test-card.json"):
    d = tmp_path / "tables"
    d.mkdir(exist_ok=True)
    (d / name).write_text(json.dumps(data))
    return d / name


# SharedA fastest at M <= 4, SharedB from 16 up; OwnLayout best at prefill only; HighPrio slowest.
ROWS = [(N, K, m, name, us) for m, per in {
    1: {"HighPrio": 50, "SharedA": 10, "SharedB": 20, "OwnLayout": 30},
    4: {"HighPrio": 60, "SharedA": 12, "SharedB": 22, "OwnLayout": 32},
    16: {"HighPrio": 80, "SharedA": 40, "SharedB": 25, "OwnLayout": 35},
    256: {"HighPrio": 400, "SharedA": 300, "SharedB": 200, "OwnLayout": 100},
    2048: {"HighPrio": 3000, "SharedA": 2500, "SharedB": 1500, "OwnLayout": 700},
}.items() for name, us in per.items()]


@pytest.fixture
def plat():
    return make_platform("sm90", device_name="Test Card")


@pytest.fixture
def user_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_no_table_keeps_priority(plat, user_tables):
    sel = select(CONFIG, plat, kernels=KERNELS)
    assert sel.kernel is HighPrio and sel.table is None and sel.plan == []


@pytest.mark.parametrize("regime, expected", [("decode", SharedA), ("prefill", OwnLayout), ("mixed", OwnLayout)])
def test_regime_picks_least_summed_time(plat, user_tables, regime, expected):
    write(user_tables, table(ROWS))
    sel = select(CONFIG, plat, kernels=KERNELS, regime=regime)
    assert sel.kernel is expected
    assert sel.table is not None and sel.table.regime == regime
    assert "the priority pick" in sel.reasons[HighPrio.full_name()]


def test_fp16_layers_use_bf16_rows_until_they_have_their_own(plat, user_tables):
    fp16 = scheme_config("w4a16-g128", N, K, "fp16")
    write(user_tables, table(ROWS))  # rows timed with bf16 activations only
    sel = select(fp16, plat, kernels=KERNELS, regime="decode")
    assert sel.kernel is SharedA and sel.table.stand_in == "bfloat16"
    assert "timed with bfloat16 activations" in sel.explain()
    # rows of the layer's own dtype win over the stand-in's
    own = table([(n, k, m, "OwnLayout" if name == "SharedA" else "SharedA" if name == "OwnLayout" else name, us)
                 for n, k, m, name, us in ROWS])
    for r in own["rows"]:
        r["config"] = tables.config_key(fp16)
    write(user_tables, own, "sm90-test-card-fp16.json")
    sel = select(fp16, plat, kernels=KERNELS, regime="decode")
    assert sel.kernel is OwnLayout and sel.table.stand_in is None
    # and bf16 layers still read their own rows
    assert select(CONFIG, plat, kernels=KERNELS, regime="decode").kernel is SharedA


def test_decode_regime_sums_only_small_m(plat, user_tables):
    write(user_tables, table(ROWS))
    d = select(CONFIG, plat, kernels=KERNELS, regime="decode").table
    assert d.regime_ms == [1, 4, 16]
    assert d.sums[SharedA.full_name()] == 10 + 12 + 40


def test_shared_layout_dispatches_per_m(plat, user_tables):
    write(user_tables, table(ROWS))
    sel = select(CONFIG, plat, kernels=KERNELS, regime="decode")
    # SharedA owns the layout; SharedB shares it and wins from M=16 on (switch at sqrt(4*16) = 8)
    assert [(hi, k) for hi, k in sel.plan] == [(8, SharedA), (1 << 62, SharedB)]


def test_own_layout_gets_no_per_m_dispatch(plat, user_tables):
    write(user_tables, table(ROWS))
    sel = select(CONFIG, plat, kernels=KERNELS, regime="prefill")
    assert sel.kernel is OwnLayout and len(sel.plan) == 1


def test_batch_invariant_mode_never_switches_kernels_per_m(plat, user_tables):
    write(user_tables, table(ROWS))
    for k in KERNELS:
        k.batch_invariant = True
    try:
        with override_settings(batch_invariant=True):
            sel = select(CONFIG, plat, kernels=KERNELS, regime="decode")
        assert sel.kernel is SharedA and len(sel.plan) == 1
    finally:
        for k in KERNELS:
            k.batch_invariant = False


def test_forced_kernel_beats_the_table(plat, user_tables):
    write(user_tables, table(ROWS))
    sel = select(CONFIG, plat, kernels=KERNELS, force=["HighPrio"])
    assert sel.kernel is HighPrio and sel.table is None


def test_tables_can_be_switched_off(plat, user_tables):
    write(user_tables, table(ROWS))
    with override_settings(use_tables=False):
        assert select(CONFIG, plat, kernels=KERNELS).kernel is HighPrio


def test_unusable_kernels_rows_are_ignored(plat, user_tables):
    write(user_tables, table(ROWS))
    sel = select(CONFIG, plat, kernels=[HighPrio, SharedA, SharedB], regime="prefill")  # OwnLayout not here
    assert sel.kernel is SharedB


def test_nearby_shape_applies_far_shape_does_not(plat, user_tables):
    write(user_tables, table(ROWS))
    near = scheme_config("w4a16-g128", 384, 768)  # 1.5x: the 256x512 rows apply
    assert select(near, plat, kernels=KERNELS, regime="decode").kernel is SharedA
    far = scheme_config("w4a16-g128", 4096, 4096)  # 8x: no row applies -> priority
    assert select(far, plat, kernels=KERNELS, regime="decode").kernel is HighPrio


def test_nearest_of_several_shapes_wins(plat, user_tables):
    rows = [(N, K, 1, "SharedA", 10), (N, K, 1, "SharedB", 20),
            (2 * N, K, 1, "SharedA", 20), (2 * N, K, 1, "SharedB", 10)]
    write(user_tables, table(rows))
    c = scheme_config("w4a16-g128", 2 * N - 64, K)
    sel = select(c, plat, kernels=KERNELS, regime="decode")
    assert sel.table.shape == (2 * N, K) and sel.kernel is SharedB


def test_kernel_without_every_regime_row_is_not_chosen(plat, user_tables):
    rows = [r for r in ROWS if not (r[3] == "OwnLayout" and r[2] == 2048)]
    write(user_tables, table(rows))
    sel = select(CONFIG, plat, kernels=KERNELS, regime="prefill")
    assert sel.kernel is SharedB
    assert "no table row" in sel.reasons[OwnLayout.full_name()]


def test_other_architecture_falls_back_to_priority(user_tables):
    write(user_tables, table(ROWS))
    other = make_platform("sm100", device_name="Other Card")
    assert select(CONFIG, other, kernels=KERNELS).kernel is HighPrio


def test_same_card_table_preferred_to_same_arch(plat, user_tables):
    write(user_tables, table(ROWS, device="Another sm90 Card"), "sm90-another.json")
    flipped = [(n, k, m, {"OwnLayout": "HighPrio", "HighPrio": "OwnLayout"}.get(name, name), us)
               for n, k, m, name, us in ROWS]
    write(user_tables, table(flipped), "sm90-test-card.json")
    assert select(CONFIG, plat, kernels=KERNELS, regime="prefill").kernel is HighPrio
    other_card = make_platform("sm90", device_name="Third Card")  # no table of its own: same-arch tables
    assert select(CONFIG, other_card, kernels=KERNELS, regime="prefill").table is not None


def test_corrupt_and_foreign_tables_are_skipped_with_a_warning(plat, user_tables):
    d = user_tables / "tables"
    d.mkdir()
    (d / "broken.json").write_text('{"format": 1, "arch": "sm90", "rows": [')
    (d / "bad-row.json").write_text(json.dumps(dict(table(ROWS), rows=[{"family": "mp"}])))
    (d / "negative.json").write_text(json.dumps(table([(N, K, 1, "SharedA", -5)])))
    with pytest.warns(UserWarning, match="skipping kernel table"):
        sel = select(CONFIG, plat, kernels=KERNELS)
    assert sel.kernel is HighPrio


def test_bad_regime_names_the_field(plat):
    with pytest.raises(ValueError, match="regime"):
        select(CONFIG, plat, kernels=KERNELS, regime="batch")


def test_explain_shows_the_deciding_rows(plat, user_tables):
    write(user_tables, table(ROWS))
    text = select(CONFIG, plat, kernels=KERNELS, regime="decode").explain()
    assert "table sm90-test-card.json (Test Card), rows at N=256 K=512, regime decode" in text
    assert "62.0 us summed <- chosen" in text and "per-M dispatch" in text


def test_rows_timed_with_another_kernel_version_are_ignored(plat, user_tables):
    """A kernel whose call path changed bumps ``table_version``; rows stamped with another version
    (absent = 0) no longer count, so a stale row can neither pick it nor keep it out, until re-timed."""
    data = table(ROWS)
    write(user_tables, data)
    assert select(CONFIG, plat, kernels=KERNELS, regime="decode").kernel is SharedA

    class SharedA2(SharedA):  # the same kernel after a change that made its old rows stale
        table_version = 2

    SharedA2.__name__ = SharedA2.__qualname__ = "SharedA"
    assert SharedA2.full_name() == SharedA.full_name()
    kernels = [HighPrio, SharedA2, SharedB, OwnLayout]
    sel = select(CONFIG, plat, kernels=kernels, regime="decode")
    assert sel.kernel is SharedB  # SharedA's unversioned rows are ignored
    assert "timed with an older version of the kernel" in sel.reasons[SharedA2.full_name()]
    for r in data["rows"]:  # re-timed: the rows carry the version they were timed with
        if r["kernel"] == SharedA.full_name():
            r["kernel_version"] = 2
    write(user_tables, data)
    assert select(CONFIG, plat, kernels=kernels, regime="decode").kernel is SharedA2
    assert select(CONFIG, plat, kernels=KERNELS, regime="decode").kernel is SharedB  # and old code ignores new rows
    data["rows"][0]["kernel_version"] = "two"
    write(user_tables, data)
    with pytest.warns(UserWarning, match=r"rows\[0\]"):
        select(CONFIG, plat, kernels=KERNELS, regime="decode")


def test_table_report_counts_rows_and_stale_ones(plat, user_tables):
    """What ``qlinear doctor`` shows: the tables for this platform, and per kernel the rows timed with
    another version of it (ignored by selection)."""
    write(user_tables, table(ROWS))

    class SharedA2(SharedA):
        table_version = 1

    rep = tables.table_report(plat, {SharedA.full_name(): SharedA2, SharedB.full_name(): SharedB})
    user = [t for t in rep if t["source"] == "user"]
    assert rep[0] is user[0] and len(user) == 1 and user[0]["rows"] == len(ROWS)  # first: it takes precedence
    assert user[0]["stale"] == {SharedA.full_name(): 5}  # its rows at M 1, 4, 16, 256, 2048


def test_user_table_overrides_provider_tables(plat, user_tables, tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "sm90-test-card.json").write_text(json.dumps(table(ROWS)))
    user_rows = [(N, K, 1, "HighPrio", 1.0), (N, K, 1, "SharedA", 2.0)]
    write(user_tables, table(user_rows))
    groups = [[("user", tables.user_dir())], [("provider standin", shipped)]]
    d = tables.decide(CONFIG, KERNELS, plat, "decode", groups=groups)
    assert d.kernel == HighPrio.full_name()
    d = tables.decide(CONFIG, KERNELS, plat, "decode", groups=groups[1:])
    assert d.kernel == SharedA.full_name()


def test_provider_tables_of_one_card_merge(plat, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "sm90-test-card.json").write_text(json.dumps(table([(N, K, 1, "SharedA", 10)])))
    (b / "sm90-test-card.json").write_text(json.dumps(table([(N, K, 1, "SharedB", 5)])))
    d = tables.decide(CONFIG, KERNELS, plat, "decode", groups=[[("provider a", a), ("provider b", b)]])
    assert d.kernel == SharedB.full_name() and len(d.tables) == 2


# ---- QuantLinear: regime= and per-M dispatch at call time ---------------------------------------
@pytest.fixture
def registered(fresh_registry):
    for k in KERNELS:
        qlinear.register_linear_kernel(k, None, "mp")
    yield
    CALLS.clear()
    ATTACHED.clear()


def test_quantlinear_dispatches_per_m_with_one_weight_copy(user_tables, registered):
    with simulate_platform("cpu"):
        plat = qlinear.platform.current_platform()
        data = table(ROWS, device=tables.device_of(plat), arch=tables.arch_of(plat))
        write(user_tables, data, "cpu.json")
        lin = torch.nn.Linear(K, N, dtype=torch.bfloat16)
        q = QuantLinear.from_linear(lin, "w4a16-g128", regime="decode")
    assert type(q.kernel) is SharedA and ATTACHED == ["SharedB"]  # SharedB serves the layer SharedA re-laid
    n_params = len(list(q.parameters()))
    assert n_params == len(dict(q.named_parameters())) and not hasattr(q, "_layers")  # no second copy
    for m, expected in ((1, "SharedA"), (4, "SharedA"), (8, "SharedA"), (9, "SharedB"), (300, "SharedB")):
        CALLS.clear()
        x = torch.randn(m, K, dtype=torch.bfloat16)
        y = q(x)
        assert CALLS == [expected], m
        params = {n: getattr(q, n) for n in ("weight_packed", "weight_scale")}
        ref = reference_linear(q.config, params, x, q.bias)
        assert float((y.double() - ref).norm() / ref.norm()) < 1e-2
        assert q.kernel_for(m)[0].__class__.__name__ == expected


def test_quantlinear_regime_prefill_uses_its_own_layout_kernel(user_tables, registered):
    with simulate_platform("cpu"):
        plat = qlinear.platform.current_platform()
        write(user_tables, table(ROWS, device=tables.device_of(plat), arch=tables.arch_of(plat)), "cpu.json")
        q = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w4a16-g128", regime="prefill")
    assert type(q.kernel) is OwnLayout and q.dispatch is None


def test_autotune_opt_in_dispatches_across_layouts_from_the_table(user_tables, registered):
    """QLINEAR_AUTOTUNE=1 + a table: per-M winners of any layout, one weight copy per extra layout
    (SharedA/SharedB share one), nothing timed."""
    with simulate_platform("cpu"), override_settings(autotune=True):
        plat = qlinear.platform.current_platform()
        write(user_tables, table(ROWS, device=tables.device_of(plat), arch=tables.arch_of(plat)), "cpu.json")
        q = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w4a16-g128", regime="prefill")
    assert type(q.kernel) is OwnLayout and len(q._layers) == 1
    assert [(hi, c.__name__) for hi, c in q.selection.plan] == [(8, "SharedA"), (64, "SharedB"), (1 << 62, "OwnLayout")]
    for m, expected, on_copy in ((1, "SharedA", True), (16, "SharedB", True), (300, "OwnLayout", False)):
        CALLS.clear()
        x = torch.randn(m, K, dtype=torch.bfloat16)
        y = q(x)
        assert CALLS == [expected]
        assert (q.kernel_for(m)[1] is q._layers[0]) == on_copy
        params = {n: getattr(q, n) for n in ("weight_packed", "weight_scale")}
        ref = reference_linear(q.config, params, x, q.bias)
        assert float((y.double() - ref).norm() / ref.norm()) < 1e-2
    assert "per-M dispatch: M 1..8 -> standin.SharedA" in q.selection.explain()


def test_autotune_opt_in_takes_a_second_layout_only_where_it_pays(user_tables, registered, monkeypatch):
    """An M where the other layout's kernel is at most EXTRA_LAYOUT_MIN_GAIN faster stays on the chosen
    kernel's layout: no weight copy for a few percent."""
    from qlinear import nn as qnn

    rows = [(N, K, m, name, us) for m, per in {
        1: {"SharedA": 10.0, "OwnLayout": 10.5},  # 5 %: stays on OwnLayout
        16: {"SharedA": 20.0, "OwnLayout": 30.0},  # 50 %: would pay for a copy ...
        2048: {"SharedA": 2500, "OwnLayout": 700},
    }.items() for name, us in per.items()]
    with simulate_platform("cpu"), override_settings(autotune=True):
        plat = qlinear.platform.current_platform()
        write(user_tables, table(rows, device=tables.device_of(plat), arch=tables.arch_of(plat)), "cpu.json")
        q = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w4a16-g128", regime="prefill")
        assert [(hi, c.__name__) for hi, c in q.selection.plan] == [(4, "OwnLayout"), (181, "SharedA"), (1 << 62, "OwnLayout")]
        assert len(q._layers) == 1
        monkeypatch.setattr(qnn, "EXTRA_LAYOUT_MIN_GAIN", 0.6)  # ... unless the bar is above its gain
        q2 = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w4a16-g128", regime="prefill")
    assert [c.__name__ for _, c in q2.selection.plan] == ["OwnLayout"] and len(q2._layers) == 0


def test_environment_regime_is_the_default(user_tables, registered):
    with simulate_platform("cpu"), override_settings(regime="prefill"):
        plat = qlinear.platform.current_platform()
        write(user_tables, table(ROWS, device=tables.device_of(plat), arch=tables.arch_of(plat)), "cpu.json")
        q = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w4a16-g128")
    assert type(q.kernel) is OwnLayout


def test_settings_read_regime_and_tables_from_env():
    from qlinear.settings import Settings

    s = Settings.from_env({"QLINEAR_REGIME": "Decode", "QLINEAR_TABLES": "0"})
    assert s.regime == "decode" and s.use_tables is False
    assert Settings.from_env({}).use_tables is True and Settings.from_env({}).regime == "mixed"


def test_selection_never_imports_the_tuning_tool(plat, user_tables):
    import subprocess
    import sys

    code = ("import sys, torch, qlinear; from qlinear.nn import scheme_config; "
            "qlinear.select(scheme_config('w8a16-ch', 256, 512), raise_on_failure=False); "
            "bad = [m for m in ('qlinear.tune', 'qlinear.bench', 'qlinear.cli') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)

