"""The fault tier prints one summary line per run at the end of the session, pass or fail."""

from __future__ import annotations

import pytest

from tests.faults.harness import SUMMARIES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARIES:
        terminalreporter.section("fault runs")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
