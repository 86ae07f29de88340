"""Smoke test of the benchmark harness (bench/), so it cannot rot between benchmark runs.

Runs `bench/run.mjs --profile smoke`: all four peers (hub all-in-one, hub services over Redis, the
Node relay, the raw stream relay) on a tiny workload. It checks the report's shape, that every peer
completed commands without errors, and that every process the harness started is gone afterwards.
It never asserts on speed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PEERS = ("hub all-in-one", "hub services (Redis)", "Node socket.io relay", "raw stream relay")

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("redis-server") and shutil.which("taskset")),
    reason="needs node, redis-server and taskset",
)


def _node_modules() -> None:
    """`npm ci` in bench/ when its packages are missing or older than the lock file."""
    marker = BENCH / "node_modules" / ".package-lock.json"
    lock = BENCH / "package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=BENCH, check=True, timeout=300
        )


@pytest.mark.timeout(300)
def test_bench_smoke(tmp_path: Path) -> None:
    _node_modules()
    run = subprocess.run(
        ["node", str(BENCH / "run.mjs"), "--profile", "smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = run.stdout
    lines = report.strip().splitlines()
    assert re.fullmatch(r"ratio hub-services/node-relay throughput: \d+\.\d\d", lines[-1])
    assert sum(line.startswith("ratio ") for line in lines) == 1
    for title in (
        "## W1 latency floor",
        "## W2 closed loop",
        "## W3 idle connections",
        "## Summary",
    ):
        assert title in report
    for peer in PEERS:
        rows = [line.split(" | ") for line in lines if line.startswith(f"| {peer} | ")]
        assert len(rows) == 5, (peer, rows)  # W1, W2, W3, CPU by process, summary
        w1, w2, idle, by_process, _ = rows
        for row in (w1, w2):
            assert float(row[2]) > 0, row  # cmd/s
            assert row[8] == "0", row  # errors
        assert idle[5] == "0", idle  # idle connection failures
        assert re.search(r"\d", by_process[1]), by_process
    hub_rows = [line.split(" | ") for line in lines if line.startswith("| hub services (Redis) | ")]
    redis_calls = [row[11] for row in hub_rows[:2]]  # W1 and W2: Redis commands per command
    assert all(re.match(r"\d+\.\d \(", cell) for cell in redis_calls), redis_calls

    (run_dir,) = tmp_path.iterdir()
    started = (run_dir / "logs" / "pids.txt").read_text().split("\n")
    pids = [int(line.split()[0]) for line in started if line]
    assert len(pids) == 11  # hub-aio 1, hub-services Redis + 3, each relay Redis + 2
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert not alive, f"bench left processes running: {alive}"
