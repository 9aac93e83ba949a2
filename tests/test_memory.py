"""The heap trimmer: it calls glibc's malloc_trim on its interval, in a thread, and stops cleanly."""

import asyncio
import threading

import pytest

from realtime import memory
from realtime.memory import HeapTrimmer


def test_glibc_has_malloc_trim():
    assert memory._malloc_trim() is not None  # the machines CI and the Deploy recipe run on are glibc


async def test_it_trims_on_its_interval_off_the_event_loop(monkeypatch):
    calls: list[tuple[int, bool]] = []
    trimmed = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = threading.current_thread()

    def fake_trim(pad):
        calls.append((pad, threading.current_thread() is main))
        loop.call_soon_threadsafe(trimmed.set)
        return 1

    monkeypatch.setattr(memory, "_malloc_trim", lambda: fake_trim)
    trimmer = HeapTrimmer(0.01)
    trimmer.start()
    await asyncio.wait_for(trimmed.wait(), 5)
    await trimmer.stop()
    assert calls[0] == (0, False)  # malloc_trim(0), called from a worker thread


async def test_off_when_the_interval_is_none():
    trimmer = HeapTrimmer(None)
    trimmer.start()
    assert not trimmer.available and trimmer._task is None
    await trimmer.stop()


async def test_the_real_call_returns_free_pages():
    """glibc's malloc_trim after freeing many mid-sized buffers: 1 means it gave pages back."""
    blobs = [bytearray(4096) for _ in range(20_000)]
    del blobs[::2]
    assert await asyncio.to_thread(memory._malloc_trim(), 0) == 1


pytestmark = pytest.mark.filterwarnings("error")
