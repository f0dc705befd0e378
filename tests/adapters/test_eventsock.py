"""The event socket: real Unix sockets, real subscribers, bounded waits."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from worksync_p2p.adapters.eventsock import MAX_BEHIND_BYTES, EventBus, serve_events

WAIT_S = 10.0


async def _subscribe(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    line = await asyncio.wait_for(reader.readline(), WAIT_S)
    assert json.loads(line) == {"event": "subscribed"}
    return reader, writer


async def _line(reader: asyncio.StreamReader) -> dict[str, object]:
    event: dict[str, object] = json.loads(await asyncio.wait_for(reader.readline(), WAIT_S))
    return event


def test_every_subscriber_gets_every_event_in_order_until_the_bus_closes(tmp_path: Path) -> None:
    async def scenario() -> None:
        bus = EventBus()
        async with serve_events(tmp_path, bus) as path:
            assert path is not None
            first, second = await _subscribe(path), await _subscribe(path)
            for n in range(3):
                bus.publish({"event": "modified", "n": n})
            for reader, _writer in (first, second):
                assert [(await _line(reader))["n"] for _ in range(3)] == [0, 1, 2]
        for reader, writer in (first, second):
            assert await asyncio.wait_for(reader.read(), WAIT_S) == b""  # the stream ended
            writer.close()

    asyncio.run(scenario())


def test_a_subscriber_that_stops_reading_is_dropped_and_others_keep_theirs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "x" * 4096
    count = 2 * MAX_BEHIND_BYTES // len(text)

    async def scenario() -> None:
        bus = EventBus()
        async with serve_events(tmp_path, bus) as path:
            assert path is not None
            _stalled_reader, stalled = await _subscribe(path)  # never reads
            reader, writer = await _subscribe(path)
            for n in range(count):
                bus.publish({"event": "modified", "n": n, "text": text})
                assert (await _line(reader))["n"] == n  # this one keeps up
            writer.close()
            stalled.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == [f"an event subscriber fell {MAX_BEHIND_BYTES} bytes behind; dropped it"]
