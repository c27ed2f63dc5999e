"""Compiled layouts: designer specs with their CEL programs, ready for `decide`. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.engine.experiments import Experiments
from app.engine.flags import CompiledFlag
from app.engine.metrics import MetricSpec
from app.engine.policies import CompiledPolicy, PolicyCaseSpec
from app.engine.retention import Retention
from app.engine.specs import FeedSpec, ScreenSpec, SuppressSpec, ViewSpec, WidgetSpec
from app.engine.vocabulary import Vocabulary


@dataclass(frozen=True, slots=True)
class Template:
    """A `{{ cel }}` template: `whole` keeps the expression's type; otherwise text is joined."""

    parts: tuple[str | Any, ...]  # literal strings and cel.Program objects
    whole: bool = False


# A props tree: dicts, lists, literals and Templates.
PropsTree = Any


@dataclass(frozen=True, slots=True)
class CompiledFallback:
    type: str
    props: PropsTree


@dataclass(frozen=True, slots=True)
class CompiledWidget:
    spec: WidgetSpec
    slot: str
    order: int
    when: Any  # cel.Program
    confidence: float | Any  # a number or a cel.Program
    props: PropsTree
    summary: Template
    drivers: tuple[tuple[str, Any], ...]  # (signal path, cel.Program)
    purposes: frozenset[str]  # the purposes it rests on, necessary aside (consent)
    fallback: CompiledFallback | None
    once_per_screen: str | None  # see widgets.WidgetKind

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def suppress(self) -> SuppressSpec:
        return self.spec.suppress

    @property
    def feed(self) -> FeedSpec | None:
        return self.spec.feed


@dataclass(frozen=True, slots=True)
class CompiledSlot:
    id: str
    max: int
    widgets: tuple[CompiledWidget, ...]


@dataclass(frozen=True, slots=True)
class CompiledScreen:
    spec: ScreenSpec
    source: str  # the file it came from
    slots: tuple[CompiledSlot, ...]
    # widget → the widgets it replaces or is replaced by: dismissing one rests them all
    families: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the propensity targets this screen's rules read: only those are scored for it
    propensity_targets: frozenset[str] = frozenset()
    # the flags this screen's rules read: those (and the client flags) are evaluated for it
    flag_reads: frozenset[str] = frozenset()
    flags_evaluated: frozenset[str] = frozenset()  # flag_reads and the client flags

    @property
    def name(self) -> str:
        return self.spec.screen

    def view(self, view_id: str) -> ViewSpec | None:
        return next((v for v in self.spec.views if v.id == view_id), None)

    def view_for_role(self, role: str) -> ViewSpec:
        for v in self.spec.views:
            if role and role in v.roles:
                return v
        found = self.view(self.spec.default_view)
        assert found is not None  # checked when compiled
        return found


@dataclass(frozen=True, slots=True)
class Layouts:
    """Everything the engine decides with; replaced whole on a reload."""

    vocabulary: Vocabulary
    screens: dict[str, CompiledScreen] = field(default_factory=dict)
    version: str = ""  # content hash of the sources
    context_trie: dict[str, Any] = field(default_factory=dict)  # what the screens' CEL reads
    metrics: dict[str, MetricSpec] = field(default_factory=dict)  # metrics.yaml, by name
    flags: dict[str, CompiledFlag] = field(default_factory=dict)  # flags.yaml, by key
    # flags sent to browsers and apps (in descriptors, and to publishable keys)
    client_flags: tuple[str, ...] = ()
    experiments: Experiments = field(default_factory=Experiments)  # experiments.yaml
    policies: tuple[CompiledPolicy, ...] = ()  # policies.yaml's placement rules (forbid wins)
    policy_cases: tuple[PolicyCaseSpec, ...] = ()  # policies.yaml's tests (cairn policy test)
    retention: Retention = field(default_factory=Retention)  # retention.yaml's windows
    # screens taken out of service on purpose (a `removed: true` file under screens/)
    removed_screens: frozenset[str] = frozenset()

    # widget (id, type) → the placement policies that cover it, made once per widget
    covering: dict[tuple[str, str], tuple[CompiledPolicy, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def placements(self, widget_id: str, widget_type: str) -> tuple[CompiledPolicy, ...]:
        """The placement policies covering this widget."""
        key = (widget_id, widget_type)
        found = self.covering.get(key)
        if found is None:
            found = tuple(p for p in self.policies if p.covers(widget_id, widget_type))
            self.covering[key] = found
        return found

    @property
    def targeting(self) -> tuple[CompiledPolicy, ...]:
        """The policies that limit which segments owners may target."""
        return tuple(p for p in self.policies if p.owners)

    # the flags a set of keys compiles to (app.engine.flags.compile_flag_set), made once per set
    flag_sets: dict[frozenset[str], Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def flags_read_by_layouts(self) -> frozenset[str]:
        return frozenset().union(*(s.flag_reads for s in self.screens.values()))
