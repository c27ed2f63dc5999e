"""The shipped meaning of events, plans, presets and help, compiled once from layouts/."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.engine.specs import HelpSpec, IndustrySpec, PresetsSpec, SignalsSpec


@dataclass(frozen=True, slots=True)
class CompiledStage:
    stage: str
    program: Any  # cel.Program


NECESSARY = "necessary"


@dataclass(frozen=True, slots=True)
class Vocabulary:
    signals: SignalsSpec
    presets: PresetsSpec
    help: HelpSpec
    stages: tuple[CompiledStage, ...] = ()
    tracked_events: tuple[str, ...] = field(default=())
    stage_trie: dict[str, Any] = field(default_factory=dict)  # what the stage rules read
    # each level's purposes, made once (`granted` without a user's own choices)
    _levels: dict[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def facets(self) -> dict[str, str]:
        return self.signals.facets

    def purpose_of(self, dotted: str) -> str:
        """The purpose a signal path rests on: the purpose naming the longest prefix of it
        (`recs.help` before `recs`); `necessary` when none does."""
        best, length = NECESSARY, -1
        for name, purpose in self.signals.purposes.items():
            for path in purpose.signals:
                if (dotted == path or dotted.startswith(path + ".")) and len(path) > length:
                    best, length = name, len(path)
        return best

    def granted(self, preset: str, overrides: Mapping[str, bool] | None = None) -> frozenset[str]:
        """The purposes a personalization level grants, with a user's own choices on top; the
        required purposes always."""
        if not overrides:
            found = self._levels.get(preset)
            if found is None:
                found = self._levels[preset] = self._granted(preset, None)
            return found
        return self._granted(preset, overrides)

    def _granted(self, preset: str, overrides: Mapping[str, bool] | None) -> frozenset[str]:
        purposes = self.signals.purposes
        if not purposes:  # a vocabulary without purposes: every signal is necessary
            return frozenset({NECESSARY})
        chosen = {p for level, names in self.signals.consent_presets.items() if level == preset
                  for p in names}  # fmt: skip
        for name, allowed in (overrides or {}).items():
            if name in purposes and allowed:
                chosen.add(name)
            elif name in purposes:
                chosen.discard(name)
        chosen |= {name for name, p in purposes.items() if p.required}
        return frozenset(chosen | {NECESSARY})

    def consent_choices(self, categories: Mapping[str, Any]) -> dict[str, bool]:
        """The purposes a Segment `categoryPreferences` object grants (true) or withholds
        (false), by `consent_categories`; a purpose two categories name is withheld if either
        withholds it. Unknown categories and values that are not booleans are ignored."""
        out: dict[str, bool] = {}
        for category, allowed in categories.items():
            if not isinstance(allowed, bool):
                continue
            for purpose in self.signals.consent_categories.get(category, ()):
                out[purpose] = out.get(purpose, True) and allowed
        return out

    def industry(self, industry: str | None) -> tuple[str, IndustrySpec]:
        if industry and industry in self.presets.industries:
            return industry, self.presets.industries[industry]
        return "default", self.presets.default


def tracked_events(signals: SignalsSpec) -> tuple[str, ...]:
    """Every event name the signals speak of, so that `events.<name>` always exists in rules."""
    names = {
        *signals.events.value,
        *signals.events.power,
        *signals.events.friction,
        *signals.facets,
        *(step.event for step in signals.activation),
    }
    return tuple(sorted(names))
