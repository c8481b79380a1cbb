"""Scratch memory reused between kernel calls is per (device, stream): marlin's split-K workspace
and triton's split-K arrival counters. On CPU the stream is simulated (``stream_key`` patched);
the GPU tests run one layer on two streams at once against the reference."""

from __future__ import annotations

import threading

import pytest
import torch

from qlinear import streams, testing
from qlinear.formats import reference_linear

_current = threading.local()


@pytest.fixture
def fake_streams(monkeypatch):
    """``use(s)``: this thread now issues work to simulated stream ``s`` (on any device)."""
    monkeypatch.setattr(streams, "stream_key", lambda dev: (dev.type, dev.index, getattr(_current, "s", 0)))

    def use(s):
        _current.s = s

    yield use
    _current.s = 0


def test_stream_key_on_cpu_is_one_per_device():
    assert streams.stream_key(torch.device("cpu")) == streams.stream_key(torch.device("cpu"))


def test_per_stream_values_are_never_shared(fake_streams):
    per = streams.PerStream()
    made = []

    def make(old):
        made.append(old)
        return torch.zeros(4)

    fake_streams(1)
    a = per.get(torch.device("cpu"), make)
    assert per.get(torch.device("cpu"), make) is a
    fake_streams(2)
    b = per.get(torch.device("cpu"), make)
    assert b is not a and len(made) == 2


def test_a_capture_reuses_scratch_made_outside_it(fake_streams, monkeypatch):
    """Memory made inside a CUDA-graph capture would belong to the graph's pool (torch.compile's
    CUDA-graph trees refuse such memory that outlives the graph): the capture stream reuses scratch
    made outside it, and makes its own only when none exists or none is large enough."""
    per = streams.PerStream()
    made = []

    def make(old):
        made.append(old)
        return torch.zeros(4)

    dev = torch.device("cpu")
    fake_streams(1)
    eager = per.get(dev, make)
    monkeypatch.setattr(streams, "capturing", lambda d: True)
    fake_streams(7)  # the capture's side stream
    assert per.get(dev, make) is eager and len(made) == 1
    big = per.get(dev, lambda old: torch.zeros(8), fits=lambda v: v.numel() >= 8)  # nothing fits: made
    assert big.numel() == 8 and big is not eager
    fresh = streams.PerStream()
    assert fresh.get(dev, make) is not None and len(made) == 2  # a first call inside a capture still works


def test_per_stream_from_many_threads(fake_streams):
    """8 threads, each on its own stream, hammer one PerStream: each stream gets exactly one value."""
    per = streams.PerStream()
    barrier = threading.Barrier(8, timeout=30)
    got = [None] * 8

    def body(i):
        fake_streams(100 + i)
        barrier.wait()
        vals = {id(per.get(torch.device("cpu"), lambda old: torch.zeros(1))) for _ in range(200)}
        got[i] = vals

    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert all(len(v) == 1 for v in got) and len(set().union(*got)) == 8 and len(per) == 8


def test_marlin_workspace_is_per_stream(fake_streams):
    from qlinear import streams

    runtime = pytest.importorskip("qlinear_marlin.runtime")
    streams._split_k.clear()
    dev = torch.device("cpu")
    fake_streams(1)
    ws1 = runtime.workspace(dev, 100, 10)
    assert runtime.workspace(dev, 100, 10)[0] is ws1[0]
    fake_streams(2)
    ws2 = runtime.workspace(dev, 100, 10)
    assert ws2[0].data_ptr() != ws1[0].data_ptr() and ws2[1].data_ptr() != ws1[1].data_ptr()
    grown = runtime.workspace(dev, 4 << 20, 10)  # grows this stream's only
    fake_streams(1)
    assert runtime.workspace(dev, 100, 10)[0] is ws1[0] and grown[0].numel() >= 4 << 20
    streams._split_k.clear()


def test_triton_split_k_counters_are_per_stream(fake_streams):
    pytest.importorskip("triton")
    from qlinear_triton.scaled_mm import FixedTile, gemv_scratch

    tile = FixedTile.__new__(FixedTile)
    dev = torch.device("cpu")
    fake_streams(1)
    c1, p1 = gemv_scratch(tile, 512, 4, dev)
    assert gemv_scratch(tile, 512, 4, dev)[0] is c1 and c1.numel() == 64 and tuple(p1.shape) == (4, 1, 512)
    assert gemv_scratch(tile, 512, 8, dev)[1].shape[0] == 8  # more splits: this stream's scratch grows
    fake_streams(2)
    c2, p2 = gemv_scratch(tile, 512, 4, dev)
    assert c2 is not c1 and c2.data_ptr() != c1.data_ptr() and p2.data_ptr() != p1.data_ptr()


# ---- GPU: one layer, two streams at once ------------------------------------------------------------
def _two_streams_match_reference(kernel_cls, case, iters=50):
    params, x, bias = testing.make_case_layer(case, "cuda")
    from qlinear.layers import make_layer

    layer = make_layer(case.config, params)
    ref = reference_linear(case.config, {k: v.cpu() for k, v in params.items()}, x.cpu(),
                           None if bias is None else bias.cpu(), quantize_activation=kernel_cls.quantizes_activation)
    kern = kernel_cls.create(case.config)
    kern.process_weights_after_loading(layer)
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()
    torch.cuda.synchronize()
    outs = []
    for _ in range(iters):  # the same layer on both streams, with no ordering between them
        with torch.cuda.stream(s1):
            o1 = kern.apply_weights(layer, x, bias)
        with torch.cuda.stream(s2):
            o2 = kern.apply_weights(layer, x, bias)
        outs += [o1, o2]
    torch.cuda.synchronize()
    worst = max(float((o.cpu().double() - ref.double()).norm() / ref.double().norm()) for o in outs)
    assert worst < 2e-2, f"{kernel_cls.__name__} on two streams: worst relative error {worst:.3g}"


@pytest.mark.gpu
def test_triton_w4a16_split_k_on_two_streams():
    pytest.importorskip("triton")
    from qlinear.config import MPLinearLayerConfig
    from qlinear.scalar_type import scalar_types
    from qlinear_triton.mp import TritonW4A16LinearKernel

    c = MPLinearLayerConfig((8192, 256), (8192, 256), scalar_types.uint4b8, torch.float16, 128, False, False)
    _two_streams_match_reference(TritonW4A16LinearKernel, testing.Case(c, 1, with_bias=False))


@pytest.mark.gpu
def test_marlin_split_k_on_two_streams():
    pytest.importorskip("qlinear_marlin")
    from qlinear.config import MPLinearLayerConfig
    from qlinear.scalar_type import scalar_types
    from qlinear_marlin.mp import MarlinMPLinearKernel

    c = MPLinearLayerConfig((8192, 256), (8192, 256), scalar_types.uint4b8, torch.float16, 128, False, False)
    _two_streams_match_reference(MarlinMPLinearKernel, testing.Case(c, 16, with_bias=False))


@pytest.mark.gpu
def test_stream_key_names_the_current_cuda_stream():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    dev = torch.device("cuda")
    s = torch.cuda.Stream()
    assert streams.stream_key(dev)[2] == torch.cuda.current_stream().cuda_stream
    with torch.cuda.stream(s):
        assert streams.stream_key(dev)[2] == s.cuda_stream != torch.cuda.default_stream().cuda_stream
