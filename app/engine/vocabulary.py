"""The shipped meaning of events, plans, presets and help, compiled once from layouts/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.engine.specs import HelpSpec, IndustrySpec, PresetsSpec, SignalsSpec


@dataclass(frozen=True, slots=True)
class CompiledStage:
    stage: str
    program: Any  # cel.Program


@dataclass(frozen=True, slots=True)
class Vocabulary:
    signals: SignalsSpec
    presets: PresetsSpec
    help: HelpSpec
    stages: tuple[CompiledStage, ...] = ()
    tracked_events: tuple[str, ...] = field(default=())
    stage_trie: dict[str, Any] = field(default_factory=dict)  # what the stage rules read

    @property
    def facets(self) -> dict[str, str]:
        return self.signals.facets

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
