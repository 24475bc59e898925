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
        input="How can I cancel my order?\nORD-5521\ncan I speak to a real person?\n\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("bot: ")]
    assert len(lines) == 3
    assert "order number" in lines[0]  # the answer needs it: asked for first
    assert "cancel" in lines[1].lower() and "ORD-5521" in lines[1] and "{{" not in lines[1]
    assert "agent will reply" in lines[2]
    assert (
        "[sent, ask, cancel_order]" in done.stderr and "[sent, fill, cancel_order]" in done.stderr
    )
    assert "[handoff" in done.stderr
