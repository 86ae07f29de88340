"""The real node by hand, for debugging: `make realnode-up` / `make realnode-down`.

    python -m tests.realnode.cluster up     start it and stay in the foreground; Ctrl-C stops it
    python -m tests.realnode.cluster down   stop the one `up` started (from another terminal),
                                            and sweep whatever a killed one left behind

`up` prints the KUBECONFIG to use and the images loaded in the node; every component's log is
in the folder it names. It is the same node the tests start (tests/realnode/node.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.k8s.plane import find_bin_dir, wait_for
from tests.realnode.node import (
    LOCK,
    NodeError,
    RealNode,
    build_images,
    host_address,
    registry_aliases,
    sweep,
    why_not_here,
)
from tests.realnode.node import leftovers as node_leftovers

PID_FILE = LOCK.with_suffix(".pid")


def up() -> int:
    bin_dir = find_bin_dir()
    reason = why_not_here(bin_dir)
    if reason:
        print(reason, file=sys.stderr)
        return 1
    images = build_images()
    workdir = Path(tempfile.mkdtemp(prefix="semantest-realnode-"))
    node = RealNode(bin_dir=bin_dir, workdir=workdir, address=host_address(), images=images,
                    aliases=registry_aliases(images), start_timeout=600)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    try:
        node.start()
        PID_FILE.write_text(str(os.getpid()))
        print(f"real node up in {time.monotonic() - t0:.0f} s ({node.version}); logs in {workdir}")
        print(f"  export KUBECONFIG={node.kubeconfig} PATH={bin_dir}:$PATH")
        print(f"  images: hub {images['hub']}, redis {images['redis']}")
        print("  also loaded as: " + ", ".join(node.aliases))
        print("Ctrl-C (or make realnode-down) stops it.", flush=True)
        while not stop:
            time.sleep(0.5)
    except NodeError as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        print("stopping the real node...", flush=True)
        node.stop()
        PID_FILE.unlink(missing_ok=True)
    left = node.leftovers()
    for line in left:
        print(f"left behind: {line}", file=sys.stderr)
    return 1 if left else 0


def down() -> int:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(PID_FILE.read_text())
        os.kill(pid, signal.SIGTERM)
        print(f"stopping the real node (pid {pid})...", flush=True)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 240, "the node to stop", 1)
    sweep(find_bin_dir())
    left = node_leftovers()
    for line in left:
        print(f"left behind: {line}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    commands = {"up": up, "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python -m tests.realnode.cluster {'|'.join(commands)}")
    sys.exit(commands[sys.argv[1]]())
