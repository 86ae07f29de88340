"""The README's Python screenshot example, run as written (only the hub URL, the key and the page
are swapped for the test's), against the hub and the extension in Chromium: a new user who
follows the README gets a real screenshot."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.browser.conftest import KEY, Devtools
from tests.conftest import ROOT

HEADING = "### With the Python SDK: open a page, take a screenshot"


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    assert HEADING in readme, f"the README lost its section {HEADING!r}"
    block = re.search(r"```python\n(.*?)```", readme[readme.index(HEADING):], re.DOTALL)
    assert block is not None
    return block.group(1)


async def test_the_readme_screenshot_example(hub_url: str, pages: str, devtools: Devtools,
                                             tmp_path: Path) -> None:
    code = (readme_example().replace("http://localhost:3000", hub_url)
            .replace("<client key from make run>", KEY)
            .replace("https://example.com", f"{pages}/form.html"))
    script = tmp_path / "example.py"
    script.write_text(code)
    run = await asyncio.create_subprocess_exec(
        sys.executable, str(script), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 0, err.decode()
    assert out.decode().strip() == "opened Form"
    assert (tmp_path / "example.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
