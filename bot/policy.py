"""Where replies are decided: send, suggest to an agent, or hand off.

Policies (``server.policy``):
- ``auto``: send when the intent is confident and the draft grounded; an ungrounded draft is
  replaced by the best retrieved answer; ambiguous messages get that answer too.
- ``assist``: every reply is a suggestion an agent approves.
- ``hybrid`` (default): send when confident and grounded, suggest otherwise.
In every policy, out-of-scope messages and requests for a human are handed off, and a draft
that failed the grounding check is never sent as written.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.StrEnum):
    SEND = "send"
    SUGGEST = "suggest"
    HANDOFF = "handoff"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    use_fallback: bool = False  # send/suggest the best retrieved answer instead of the draft


def decide(
    policy: str,
    *,
    intent: str | None,
    verdict: str | None,
    grounded: bool,
    has_answer: bool,
    human_label: str,
) -> Decision:
    if intent == human_label and verdict != "out_of_scope":
        return Decision(Action.HANDOFF, "customer asked for a human")
    if verdict == "out_of_scope" or verdict is None:
        return Decision(Action.HANDOFF, "out of scope")
    if not has_answer:
        return Decision(Action.HANDOFF, "nothing relevant retrieved")
    if policy == "assist":
        return Decision(Action.SUGGEST, "assist policy", use_fallback=not grounded)
    if verdict == "confident" and grounded:
        return Decision(Action.SEND, "confident and grounded")
    if policy == "auto":
        return Decision(Action.SEND, f"{verdict}; best retrieved answer", use_fallback=True)
    reason = "ambiguous intent" if verdict == "ambiguous" else "draft not grounded"
    return Decision(Action.SUGGEST, reason, use_fallback=not grounded)
