"""The dialogue settings resolved once per process: labels, slots, reply texts, titles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.dialogue import titles
from bot.dialogue.slots import DEFAULT_SLOTS, SlotSpec, norm_slot
from bot.dialogue.smalltalk import REPLIES


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True)
class DialogueConfig:
    human_labels: frozenset[str]
    exclude: frozenset[str]  # never offered as an option: out of scope, human
    slots: Mapping[str, SlotSpec]
    replies: Mapping[str, str]
    titles: Mapping[str, str]
    company: str
    capabilities: str
    options: Any  # bot.settings.DialogueSettings

    @classmethod
    def from_settings(cls, settings: Any) -> DialogueConfig:
        d = settings.dialogue
        humans = frozenset({*d.human_labels, settings.intent.human_label})
        slots: dict[str, SlotSpec] = dict(DEFAULT_SLOTS)
        for name, spec in d.slots.items():
            slots[norm_slot(name)] = SlotSpec(
                spec.phrase,
                kind=spec.kind,
                example=spec.example or "",
                pattern=spec.pattern,
                min_digits=spec.min_digits,
            )
        return cls(
            human_labels=humans,
            exclude=humans | {settings.intent.oos_label},
            slots=slots,
            replies={**REPLIES, **d.replies},
            titles=dict(d.intent_titles),
            company=settings.generation.company_name,
            capabilities=d.capabilities,
            options=d,
        )

    def title(self, intent: str) -> str:
        return titles.title(intent, self.titles)

    def say(self, key: str, known_intents: Iterable[str] = (), **values: str) -> str:
        """The reply text ``key`` with its {placeholders} filled (unknown ones left empty)."""
        can = self.capabilities or titles.capabilities(
            (i for i in known_intents if i not in self.exclude), self.titles
        )
        fields = _Blank(company=self.company, capabilities=can, **values)
        return self.replies[key].format_map(fields).strip()
