"""Shared shapes of every widget: the "why this" explanation, links, and the wire base Struct."""

from __future__ import annotations

from typing import Literal

import msgspec

WhySource = Literal["rule", "recommender", "experiment", "default"]


class Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Base of everything Cairn sends on the wire: tolerant to new fields when decoded."""


class Driver(Wire, frozen=True):
    """One signal an explanation rests on, with the value it had for this user."""

    signal: str
    value: str | int | float | bool | list[str] | None


class ExperimentRef(Wire, frozen=True):
    """The experiment (and arm) a widget is part of, when one touches it."""

    key: str
    arm: str


class Why(Wire, frozen=True):
    """The plain-language "why this" that every widget carries."""

    summary: str
    source: WhySource
    confidence: float
    drivers: list[Driver] = []
    experiment: ExperimentRef | None = None


class Link(Wire, frozen=True):
    label: str
    href: str
