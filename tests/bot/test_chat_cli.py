"""``deskbot chat`` answers in the terminal through the real API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_chat_answers_and_hands_off(home: Path) -> None:
    env = {
        **os.environ,
        "DESKBOT_HOME": str(home),
        "DESKBOT_GENERATION__BACKEND": "off",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        input="How can I cancel my order?\ncan I speak to a real person?\n\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("bot: ")]
    assert len(lines) == 2
    assert "cancel" in lines[0].lower() and "{{" not in lines[0]
    assert "agent will reply" in lines[1]
    assert "[sent, cancel_order" in done.stderr and "[handoff" in done.stderr
