"""Scratch memory a kernel reuses between calls, kept per (device, stream).

A split-K workspace or a tile-arrival counter is only safe to share between calls that run one
after the other. Calls on one CUDA stream do; calls on two streams (an engine overlapping two
batches, a side stream for speculative decoding) may run at the same time and would write the
same scratch. Keying it by the current stream gives each stream its own. On the CPU (and the
Triton interpreter) every call is synchronous: one key per device.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, TypeVar

import torch

T = TypeVar("T")


def stream_key(device: torch.device) -> tuple[str, int | None, int]:
    """(device type, index, stream handle) of the stream work on ``device`` is issued to now."""
    if device.type == "cuda":  # the raw handle: no Stream object per call (it runs on every launch)
        index = device.index if device.index is not None else torch.cuda.current_device()
        return ("cuda", index, torch._C._cuda_getCurrentRawStream(index))
    return (device.type, device.index, 0)


def capturing(device: torch.device) -> bool:
    """Is a CUDA graph being captured on the current stream of ``device``?"""
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def _outside_graph_pools(device: torch.device, make: Callable[[], T]) -> T:
    """``make()`` with its allocations in the ordinary caching allocator, never a CUDA-graph pool.

    torch.compile's CUDA-graph trees run a compiled function's first (warm-up) call outside any
    capture, with every allocation of the calling thread routed into the graph's private pool.
    Scratch made then would live on in that pool untracked, and the trees refuse it ("tensor(s) in the
    cudagraph pool not tracked as outputs"). So scratch is made by a short-lived thread of its own
    (its allocations go to the ordinary allocator, on the device's default stream), and the current
    stream waits for that work (zero-filling included). Inside a capture the allocation belongs to the
    graph being captured, as it should: made in place."""
    if device.type != "cuda" or capturing(device):
        return make()
    cur = torch.cuda.current_stream(device)
    torch.cuda.default_stream(device).wait_stream(cur)
    box: list = []
    index = device.index if device.index is not None else torch.cuda.current_device()

    def run() -> None:
        try:
            with torch.cuda.device(index):
                box.append((True, make()))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box.append((False, e))

    th = threading.Thread(target=run, name="qlinear-scratch")
    th.start()
    th.join()
    ok, v = box[0]
    if not ok:
        raise v
    cur.wait_stream(torch.cuda.default_stream(device))
    for t in v if isinstance(v, (tuple, list)) else (v,):
        if isinstance(t, torch.Tensor):
            t.record_stream(cur)  # when remade and freed: not reused before cur's work on it is done
    return v


class PerStream(Generic[T]):
    """``get(device, make, fits)``: this stream's value, made (or remade, when ``fits`` says the
    current one is too small) on first use. Thread-safe; values are never shared across streams."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, T] = {}

    def get(self, device: torch.device, make: Callable[[T | None], T], fits: Callable[[T], bool] = lambda v: True) -> T:
        key = stream_key(device)
        v = self._values.get(key)
        if v is None or not fits(v):
            with self._lock:
                v = self._values.get(key)
                if (v is None or not fits(v)) and capturing(device):
                    # Inside a CUDA-graph capture (a capture runs on a side stream) memory made now belongs
                    # to the graph's pool, and torch.compile's CUDA-graph trees refuse pool memory that
                    # outlives the graph: reuse scratch made outside the capture. A graph replays its
                    # calls in order on one stream, like the eager calls that made that scratch.
                    v = next((u for u in self._values.values() if fits(u)), None)
                    if v is not None:
                        return v
                if v is None or not fits(v):
                    v = _outside_graph_pools(device, lambda: make(v))
                    self._values[key] = v
        return v

    def values(self) -> list[T]:
        return list(self._values.values())

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


_split_k: PerStream[tuple[torch.Tensor, torch.Tensor]] = PerStream()


def split_k_workspace(device: torch.device, floats: int, counters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 split-K planes (nothing is kept in them between calls) and zeroed int32 tile counters
    (every kernel that uses them leaves them zeroed), per (device, stream): calls on one stream are
    ordered and share them (every layer and provider: marlin's kernels, the cutlass decode kernel;
    those launched as programmatic dependents touch them only after waiting for the kernel before),
    two streams never write each other's. Grows, never shrinks."""

    def make(old):
        old_f, old_c = (old[0].numel(), old[1].numel()) if old is not None else (0, 0)
        return (torch.zeros(max(floats, old_f, 1 << 20), dtype=torch.float32, device=device),
                torch.zeros(max(counters, old_c, 4096), dtype=torch.int32, device=device))

    return _split_k.get(device, make, lambda ws: ws[0].numel() >= floats and ws[1].numel() >= counters)
