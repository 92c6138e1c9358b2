#!/usr/bin/env python3
"""What Redis spends on one call of the node's publish script, when calls come back to back
and when each comes alone, as at everyday rates (docs/benchmarks.md, the run of 2026-12-02).

It publishes one message per call on 500 channels, first in pipelines of 100 calls, then
one call every half millisecond, and reads Redis's own figures for each way: its CPU time
(``INFO cpu``) and the script's time per call (``INFO commandstats``). Run it against a
Redis of its own, not during a benchmark:

    redis-server --port 6500 --save '' --appendonly no --daemonize yes
    .venv/bin/python tools/script-cost.py redis://127.0.0.1:6500/0
"""

from __future__ import annotations

import sys
import time
from typing import Any

import redis

from wspool.core.history import HistoryPolicy
from wspool.core.keys import Keys
from wspool.state.redis_history import PUBLISH_SCRIPT, publish_call

CALLS = 5000
CHANNELS = 500
NAP = 0.0005
"""Seconds between calls made one at a time: Redis is asleep again when the next comes."""


def _cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _calls(sha: str) -> list[tuple[Any, ...]]:
    keys, policy = Keys(), HistoryPolicy()
    frame = '{"type":"data","channel":"c","payload":{"n":1,"text":"' + "x" * 80 + '"}}'
    calls = []
    for i in range(CALLS):
        script_keys, args = publish_call(keys, policy, {f"c{i % CHANNELS}": [frame]}, f"b.{i}")
        calls.append(("EVALSHA", sha, len(script_keys), *script_keys, *args))
    return calls


def _measure(client: redis.Redis, calls: list[tuple[Any, ...]], batch: int) -> tuple[float, float]:
    """Redis's CPU µs per call, and the script's µs per call as Redis times it."""
    client.config_resetstat()
    cpu = _cpu(client)
    for start in range(0, len(calls), batch):
        pipe = client.pipeline(transaction=False)
        for call in calls[start : start + batch]:
            pipe.execute_command(*call)
        pipe.execute()
        if batch == 1:
            time.sleep(NAP)
    used = (_cpu(client) - cpu) * 1e6 / len(calls)
    stats: dict[str, Any] = client.info("commandstats")
    return used, float(stats["cmdstat_evalsha"]["usec_per_call"])


def main() -> None:
    client = redis.Redis.from_url(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0")
    client.flushdb()
    sha = client.script_load(PUBLISH_SCRIPT)
    print("calls to the publish script, one message each | Redis CPU µs per call | script µs")
    for name, batch in (("back to back (pipelines of 100)", 100), ("one every 0.5 ms", 1)):
        used, script = _measure(client, _calls(sha), batch)
        print(f"{name:32} | {used:8.1f} | {script:6.1f}")
    client.flushdb()


if __name__ == "__main__":
    main()
