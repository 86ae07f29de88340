"""One fault per scenario, injected while ~10 clients and 3 extensions keep the hub busy.

Each run starts its own Redis (fsync'd AOF) and hub processes (1 auth, 2 gateways, 2 routers),
then checks the ledger: nothing lost, no duplicate result, nothing run twice, no hub-made failure
(TIMEOUT, NO_EXTENSION, EXTENSION_DISCONNECTED) for a command, and a healthy hub afterwards.
FAULT_REPEAT (default 2) runs each scenario that many times; FAULT_REPEAT=10 is the thorough run.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from tests.faults.harness import FAULT_REPEAT, FAULTS, Fault, run


@pytest.mark.timeout(120)
@pytest.mark.parametrize("repeat", range(FAULT_REPEAT), ids=lambda n: f"run{n}")
@pytest.mark.parametrize("fault", FAULTS, ids=str)
async def test_fault(fault: Fault, repeat: int, tmp_path: Path) -> None:
    label = f"{fault.name}#{repeat}"
    ledger = await run(fault, tmp_path, label, seed=zlib.crc32(label.encode()))
    broken = {name: found for name, found in ledger.invariants().items() if found}
    assert len(ledger.commands) > 100, f"the load did not run: {ledger.summary(label)}"
    assert not broken and not ledger.problems and not ledger.strays, ledger.explain(label) + \
        f"\n  logs: {tmp_path}"
