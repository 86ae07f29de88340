"""Smoke test of the benchmark harness (bench/), so it cannot rot between benchmark runs.

Runs `bench/run.mjs --profile smoke`: all four peers (hub all-in-one, hub services over Redis, the
Node relay, the raw stream relay) on a tiny workload. It checks the report's shape, that every peer
completed commands without errors, and that every process the harness started is gone afterwards.
A second run covers a before/after (`--baseline HEAD --candidate DIR`) over two rounds, in which
every peer is restarted before its second idle step. It never asserts on speed.
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


def _bench(out: Path, *args: str) -> str:
    """Runs the harness on the smoke profile; returns its report (stdout)."""
    _node_modules()
    run = subprocess.run(
        ["node", str(BENCH / "run.mjs"), "--profile", "smoke", "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return run.stdout


def _ratio_lines(lines: list[str]) -> None:
    """The last two lines are the two throughput ratios, and no other line starts with "ratio "."""
    assert re.fullmatch(r"ratio hub-all-in-one/node-relay throughput: \d+\.\d\d", lines[-2])
    assert re.fullmatch(r"ratio hub-services/node-relay throughput: \d+\.\d\d", lines[-1])
    assert sum(line.startswith("ratio ") for line in lines) == 2


def _all_stopped(out: Path, count: int) -> None:
    (run_dir,) = out.iterdir()
    started = (run_dir / "logs" / "pids.txt").read_text().split("\n")
    pids = [int(line.split()[0]) for line in started if line]
    assert len(pids) == count
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert not alive, f"bench left processes running: {alive}"


@pytest.mark.timeout(300)
def test_bench_smoke(tmp_path: Path) -> None:
    report = _bench(tmp_path)
    lines = report.strip().splitlines()
    _ratio_lines(lines)
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
    for row in hub_rows[:2]:  # W1 and W2
        assert re.match(r"\d+\.\d \(", row[11]), row  # Redis commands per command, all
        assert re.fullmatch(r"\d+\.\d", row[12]), row  # of which script/function calls
        assert float(row[13]) > 0, row  # client round trips per command

    _all_stopped(tmp_path, 11)  # hub-aio 1, hub-services Redis + 3, each relay Redis + 2


@pytest.mark.timeout(300)
def test_bench_candidate_rounds(tmp_path: Path) -> None:
    """A before/after in one run, two rounds: HEAD's services/ against a copy of it."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    tree = tmp_path / "candidate"
    tree.mkdir()
    subprocess.run(
        f"git archive HEAD services | tar -x -C {tree}", shell=True, cwd=ROOT, check=True
    )
    out = tmp_path / "out"
    report = _bench(
        out,
        "--rounds",
        "2",
        "--peers",
        "hub-aio,node-relay",
        "--baseline",
        "HEAD",
        "--candidate",
        str(tree),
    )
    lines = report.strip().splitlines()
    assert re.fullmatch(r"ratio hub-all-in-one/node-relay throughput: \d+\.\d\d", lines[-2])
    assert lines[-1] == "ratio hub-services/node-relay throughput: n/a"  # left out
    assert "## Candidate against baseline" in report
    rows = [line.split(" | ") for line in lines if line.startswith("| all-in-one | ")]
    steps, idle_row = rows[:-1], rows[-1]
    assert [row[1] for row in steps] == ["W1 1", "W2 8"], rows
    for row in steps:
        assert row[8] == "0 → 0", row  # errors, baseline → candidate
    assert idle_row[4] == "0 → 0 |", idle_row  # W3 failures
    idle = [line.split(" | ") for line in lines if line.startswith("| candidate hub all-in-one | ")]
    assert len(idle[2][7].split(" / ")) == 2, idle[2]  # W3: one memory reading per round
    _all_stopped(out, 10)  # (hub-aio 1, its candidate 1, node relay Redis + 2) x 2 rounds
