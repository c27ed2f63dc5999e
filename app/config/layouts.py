"""Load and validate layouts/: YAML → specs → compiled CEL, or every problem with file:line:col.

Files: `signals.yaml`, `presets.yaml`, `help.yaml` and `screens/*.yaml` under the layouts folder,
and, when there are, `flags.yaml` (`app.config.flags`: flags are compiled first, so that screens'
rules can read `flags.*`), `metrics.yaml` (`app.config.metrics`), `experiments.yaml`,
`policies.yaml` and `retention.yaml` (`app.config.retention`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cel

from app.config.experiments import load_experiments
from app.config.flags import load_flags, sample_values
from app.config.metrics import load_metrics
from app.config.policies import compile_policies, read_policies
from app.config.retention import load_retention
from app.config.yaml_source import Path_, Problem, Source, SourceError, convert, read_source
from app.engine.experiments import Experiments
from app.engine.fastcel import compile_fast, translate
from app.engine.flags import CompiledFlag
from app.engine.metrics import MetricSpec
from app.engine.model import (
    CompiledFallback,
    CompiledScreen,
    CompiledSlot,
    CompiledWidget,
    Layouts,
    PropsTree,
    Template,
)
from app.engine.paths import PLAIN_PATH, FastExpr, PathRef, build_trie
from app.engine.policies import CompiledPolicy, PoliciesFileSpec, PolicySpec, forbidding
from app.engine.propensity import TARGETS
from app.engine.recs import sample_feed
from app.engine.retention import Retention
from app.engine.signals import build_context, signal_schema
from app.engine.specs import (
    HelpSpec,
    PresetsSpec,
    RemovedScreenSpec,
    ScreenSpec,
    SignalsSpec,
    WidgetSpec,
)
from app.engine.templates import render
from app.engine.vocabulary import NECESSARY, CompiledStage, Vocabulary, tracked_events
from widgets import WIDGET_KINDS, WidgetKind


class LayoutConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_CHAIN = re.compile(r"(?<![\w.])([A-Za-z_]\w*)((?:\s*\.\s*[A-Za-z_]\w*)*)(\s*\()?")
_BOUND = re.compile(r"\.\s*(?:map|filter|exists|exists_one|all)\s*\(\s*([A-Za-z_]\w*)\s*,")
_KEYWORDS = {
    "true",
    "false",
    "null",
    "in",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "list",
    "map",
    "type",
    "dyn",
    "has",
    "size",
    "matches",
    "timestamp",
    "duration",
}
_CEL_POS = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


@dataclass
class _Compiler:
    schema: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    cel_paths: set[str] = field(default_factory=set)  # what CEL programs read, for the Context
    # policies.yaml's policies (what they forbid rules to read), and where the file is
    forbidden: dict[str, PolicySpec] = field(default_factory=dict)
    policies_file: str = "policies.yaml"

    def references(self, expr: str) -> list[tuple[str, int]]:
        """Dotted variable paths an expression reads, with their offsets."""
        blank = _STRING.sub(lambda m: " " * len(m.group(0)), expr)
        bound = set(_BOUND.findall(blank))
        found = []
        for m in _CHAIN.finditer(blank):
            root = m.group(1)
            if root in _KEYWORDS or root in bound or root[0].isdigit():
                continue
            members = [p.strip() for p in m.group(2).split(".") if p.strip()]
            if m.group(3) and members:
                members = members[:-1]  # the last name is a method: x.startsWith(...)
            elif m.group(3):
                continue  # a function call
            found.append((".".join([root, *members]), m.start()))
        return found

    def check_forbidden(self, dotted: str) -> str | None:
        found = forbidding(self.forbidden, dotted)
        if found is None:
            return None
        policy, attribute = found
        return (
            f"reads '{dotted}': policy '{policy}' ({self.policies_file}) forbids rules to read"
            f" '{attribute}'"
        )

    def check_path(self, dotted: str) -> str | None:
        node: Any = self.schema
        parts = dotted.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                return None  # members of lists and scalars are CEL's own business
            if part not in node:
                where = ".".join(parts[:i]) or "rules"
                known = ", ".join(sorted(node))[:200]
                if where == "flags":
                    return f"unknown flag '{part}' (flags.yaml defines: {known or 'none'})"
                return f"unknown signal '{'.'.join(parts[: i + 1])}' ({where} has: {known})"
            node = node[part]
        return None

    def program(self, src: Source, path: Path_, expr: str, offset: int = 0) -> Any:
        line, col = src.values.get(path, (0, 0))
        try:
            prog = cel.compile(expr)
        except ValueError as exc:
            m = _CEL_POS.search(str(exc))
            if m:
                err_line, err_col, what = int(m.group(1)), int(m.group(2)), m.group(3)
                self.problems.append(
                    Problem(
                        src.file,
                        line + err_line,
                        (col if err_line == 1 else 0) + offset + err_col + 1,
                        f"CEL: {what}",
                    )
                )
            else:
                self.problems.append(src.at(path, f"CEL: {exc}"))
            return None
        references = self.references(expr)
        for dotted, at in references:
            problem = self.check_forbidden(dotted) or self.check_path(dotted)
            if problem:
                self.problems.append(Problem(src.file, line + 1, col + 1 + offset + at, problem))
        if PLAIN_PATH.match(expr) and expr.strip() not in ("true", "false", "null"):
            return PathRef.parse(expr)
        self.cel_paths.update(dotted for dotted, _ in references)
        python = translate(expr)
        return FastExpr(compile_fast(python, expr), prog, python) if python is not None else prog

    def template(self, src: Source, path: Path_, text: str) -> Template | str:
        matches = list(_TEMPLATE.finditer(text))
        if not matches:
            return text
        quote = 1 if src.values.get(path) else 0
        parts: list[Any] = []
        pos = 0
        for m in matches:
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            parts.append(
                self.program(
                    src,
                    path,
                    m.group(1).strip(),
                    quote + m.start(1) + (len(m.group(1)) - len(m.group(1).lstrip())),
                )
            )
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        whole = len(matches) == 1 and matches[0].span() == (0, len(text))
        return Template(tuple(parts), whole=whole)

    def props(self, src: Source, path: Path_, value: Any) -> PropsTree:
        if isinstance(value, dict):
            return {k: self.props(src, (*path, k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.props(src, (*path, i), v) for i, v in enumerate(value)]
        if isinstance(value, str):
            return self.template(src, path, value)
        return value

    def purposes(self, exprs: list[str], vocab: Vocabulary, feed: str | None) -> frozenset[str]:
        """The purposes a widget rests on (necessary aside): those of every signal its rule,
        props and why read, and of the recommender feed that fills it."""
        found = {vocab.purpose_of(feed)} if feed is not None else set()
        for expr in exprs:
            for dotted, _ in self.references(expr):
                if dotted != "feed" and not dotted.startswith("feed."):
                    found.add(vocab.purpose_of(dotted))
        return frozenset(found - {NECESSARY})


def _expr(when: str | bool) -> str:
    """A rule as CEL text: YAML's own true/false are accepted as rules."""
    if isinstance(when, bool):
        return "true" if when else "false"
    return when


def _strings(tree: Any) -> list[str]:
    if isinstance(tree, dict):
        return [s for v in tree.values() for s in _strings(v)]
    if isinstance(tree, list):
        return [s for v in tree for s in _strings(v)]
    if isinstance(tree, str):
        return [m.group(1) for m in _TEMPLATE.finditer(tree)]
    return []


def _load(src: Source, spec: type[Any], problems: list[Problem]) -> Any:
    try:
        return convert(src, src.data, spec)
    except SourceError as exc:
        problems.append(exc.problem)
        return None


def _read(path: Path, root: Path, problems: list[Problem]) -> Source | None:
    try:
        display = (
            str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)
        )
        return read_source(path, display=display)
    except SourceError as exc:
        problems.append(exc.problem)
    except OSError as exc:
        problems.append(Problem(str(path), 1, 1, f"cannot read: {exc.strerror}"))
    return None


def load_layouts(root: Path) -> Layouts:
    """Read and compile every file under `root`; raise LayoutConfigError listing all problems."""
    problems: list[Problem] = []
    digest = hashlib.sha256()
    sources: dict[str, Source | None] = {}
    for name in ("signals.yaml", "presets.yaml", "help.yaml"):
        path = root / name
        if not path.exists():
            problems.append(Problem(str(path), 1, 1, "missing file"))
            sources[name] = None
            continue
        digest.update(path.read_bytes())
        sources[name] = _read(path, root, problems)
    screen_files = sorted((root / "screens").glob("*.yaml"))
    if not screen_files:
        problems.append(Problem(str(root / "screens"), 1, 1, "no screen layouts (*.yaml)"))
    screen_sources = []
    for path in screen_files:
        digest.update(path.name.encode() + path.read_bytes())
        screen_sources.append(_read(path, root, problems))

    signals_src, presets_src, help_src = (
        sources[n] for n in ("signals.yaml", "presets.yaml", "help.yaml")
    )
    signals = _load(signals_src, SignalsSpec, problems) if signals_src else None
    presets = _load(presets_src, PresetsSpec, problems) if presets_src else None
    helps = _load(help_src, HelpSpec, problems) if help_src else None
    if signals is None or presets is None or helps is None:
        raise LayoutConfigError(sorted(problems))

    _check_presets(presets, presets_src, problems)  # type: ignore[arg-type]
    vocab = Vocabulary(
        signals=signals, presets=presets, help=helps, tracked_events=tracked_events(signals)
    )
    compiler = _Compiler(schema=signal_schema(vocab))
    _check_purposes(signals, signals_src, compiler, problems)
    stages = []
    assert signals_src is not None
    for i, stage in enumerate(signals.lifecycle):
        prog = compiler.program(signals_src, ("lifecycle", i, "when"), _expr(stage.when))
        if prog is not None:
            stages.append(CompiledStage(stage.stage, prog))
    vocab = Vocabulary(
        signals=signals,
        presets=presets,
        help=helps,
        stages=tuple(stages),
        tracked_events=vocab.tracked_events,
        stage_trie=build_trie(compiler.cel_paths),
    )
    compiler.cel_paths = set()

    policies_src, policies_shape = _read_policies(root, compiler, digest, problems)
    flags = _read_flags(root, compiler, digest, problems)
    # A flags.yaml that cannot be read has its own problems: screens are not told about each flag
    compiler.schema = {**compiler.schema, "flags": None if flags is None else sample_values(flags)}
    removed: set[str] = set()
    screens = _compile_screens(screen_sources, compiler, vocab, problems, removed)
    problems.extend(compiler.problems)
    before = len(problems)
    metrics = _read_metrics(root, screens, digest, problems)
    # A metrics.yaml with problems of its own: experiments are not told about each metric
    known_metrics = metrics if len(problems) == before else None
    experiments = _read_experiments(
        root, compiler, screens, flags or {}, known_metrics, digest, problems
    )
    retention = _read_retention(root, digest, problems)
    policies: tuple[CompiledPolicy, ...] = ()
    if policies_src is not None and policies_shape is not None:
        # screens with problems of their own: policies are not told about each widget id
        ids = (
            frozenset(w.id for sc in screens.values() for sl in sc.slots for w in sl.widgets)
            if not problems
            else None
        )
        policies = compile_policies(
            policies_src, policies_shape, compiler.program, frozenset(WIDGET_KINDS), ids, problems
        )
        problems.extend(p for p in compiler.problems if p not in problems)
    if problems:
        raise LayoutConfigError(sorted(set(problems)))
    client = tuple(key for key, flag in (flags or {}).items() if flag.client)
    screens = {
        name: dataclasses.replace(screen, flags_evaluated=screen.flag_reads.union(client))
        for name, screen in screens.items()
    }
    experiments = dataclasses.replace(
        experiments,
        for_screen={
            name: tuple(experiments.relevant(name, screen.flags_evaluated))
            for name, screen in screens.items()
        },
    )
    return Layouts(
        vocabulary=vocab,
        screens=screens,
        version=digest.hexdigest()[:16],
        context_trie=build_trie(compiler.cel_paths),
        metrics=metrics,
        flags=flags or {},
        client_flags=client,
        experiments=experiments,
        policies=policies,
        policy_cases=tuple(policies_shape.tests) if policies_shape is not None else (),
        retention=retention,
        removed_screens=frozenset(removed),
    )


def _compile_screens(
    sources: list[Source | None],
    compiler: _Compiler,
    vocab: Vocabulary,
    problems: list[Problem],
    removed: set[str],
) -> dict[str, CompiledScreen]:
    screens: dict[str, CompiledScreen] = {}
    tombstones: list[tuple[str, Source]] = []
    for src in sources:
        if src is None:
            continue
        if isinstance(src.data, dict) and "removed" in src.data:
            tombstone = _load(src, RemovedScreenSpec, problems)
            if tombstone is not None:
                removed.add(tombstone.screen)
                tombstones.append((tombstone.screen, src))
            continue
        spec = _load(src, ScreenSpec, problems)
        if spec is None:
            continue
        if spec.screen in screens:
            problems.append(
                src.at(
                    ("screen",),
                    f"screen '{spec.screen}' is also defined in {screens[spec.screen].source}",
                )
            )
            continue
        screen = _compile_screen(src, spec, compiler, vocab)
        if screen is not None:
            screens[spec.screen] = screen
    for name, src in tombstones:
        if name in screens:
            where = screens[name].source
            problems.append(
                src.at(("screen",), f"screen '{name}' is removed here but defined in {where}")
            )
    return screens


def _check_purposes(
    signals: SignalsSpec, src: Source | None, compiler: _Compiler, problems: list[Problem]
) -> None:
    """Consent: the purposes' signals exist, and the levels and Segment categories name
    purposes that do; `necessary` is one of them."""
    if src is None or not signals.purposes:
        return
    known = set(signals.purposes)
    if NECESSARY not in known:
        problems.append(src.at(("purposes",), f"purposes must include '{NECESSARY}'", key=True))
    for name, purpose in signals.purposes.items():
        for i, path in enumerate(purpose.signals):
            # flags are known once flags.yaml is read; they are the product's switches
            problem = None if path.split(".")[0] == "flags" else compiler.check_path(path)
            if problem:
                problems.append(src.at(("purposes", name, "signals", i), problem))
    for section in ("consent_presets", "consent_categories"):
        for key, names in getattr(signals, section).items():
            for i, name in enumerate(names):
                if name not in known:
                    problems.append(src.at((section, key, i), f"unknown purpose '{name}'"))


def _read_policies(
    root: Path, compiler: _Compiler, digest: Any, problems: list[Problem]
) -> tuple[Source | None, PoliciesFileSpec | None]:
    """policies.yaml, when the folder has one: what its policies forbid rules to read is
    checked while everything after it compiles."""
    path = root / "policies.yaml"
    if not path.exists():
        return None, None
    digest.update(b"policies.yaml" + path.read_bytes())
    src = _read(path, root, problems)
    if src is None:
        return None, None
    specs, shape = read_policies(src, problems)
    compiler.forbidden = specs
    compiler.policies_file = src.file
    return src, shape


def _read_flags(
    root: Path, compiler: _Compiler, digest: Any, problems: list[Problem]
) -> dict[str, CompiledFlag] | None:
    """flags.yaml, when the folder has one; its rules read signals, never other flags."""
    path = root / "flags.yaml"
    if not path.exists():
        return {}
    digest.update(b"flags.yaml" + path.read_bytes())
    src = _read(path, root, problems)
    if src is None:
        return None
    return load_flags(src, compiler.program, problems)


def _read_experiments(
    root: Path,
    compiler: _Compiler,
    screens: dict[str, CompiledScreen],
    flags: dict[str, CompiledFlag],
    metrics: dict[str, MetricSpec] | None,
    digest: Any,
    problems: list[Problem],
) -> Experiments:
    """experiments.yaml, when the folder has one: arms checked against the screens, flags and
    metrics they name."""
    path = root / "experiments.yaml"
    if not path.exists():
        return Experiments()
    digest.update(b"experiments.yaml" + path.read_bytes())
    src = _read(path, root, problems)
    if src is None:
        return Experiments()
    return load_experiments(
        src,
        screens,
        flags,
        metrics,
        compiler.program,
        compiler.props,
        problems,
        references=compiler.references,
    )


def _read_metrics(
    root: Path, screens: dict[str, CompiledScreen], digest: Any, problems: list[Problem]
) -> dict[str, MetricSpec]:
    """metrics.yaml, when the folder has one."""
    path = root / "metrics.yaml"
    if not path.exists():
        return {}
    digest.update(b"metrics.yaml" + path.read_bytes())
    src = _read(path, root, problems)
    return load_metrics(src, screens, problems) if src is not None else {}


def _read_retention(root: Path, digest: Any, problems: list[Problem]) -> Retention:
    """retention.yaml, when the folder has one; without it every event is kept."""
    path = root / "retention.yaml"
    if not path.exists():
        return Retention()
    digest.update(b"retention.yaml" + path.read_bytes())
    src = _read(path, root, problems)
    return load_retention(src, problems) if src is not None else Retention()


def _check_presets(presets: PresetsSpec, src: Source, problems: list[Problem]) -> None:
    for name, industry in {**presets.industries, "default": presets.default}.items():
        base: Path_ = ("default",) if name == "default" else ("industries", name)
        for i, integration in enumerate(industry.integrations):
            if integration not in presets.integrations:
                problems.append(
                    src.at((*base, "integrations", i), f"unknown integration '{integration}'")
                )


def _propensity_targets(dotted: str) -> set[str]:
    """The propensity targets a signal path reads: `propensity.upgrade`, `propensity.scored.
    activation`...; `propensity` or `propensity.drivers` as a whole read every target."""
    parts = dotted.split(".")
    if parts[0] != "propensity":
        return set()
    named = [p for p in parts[1:3] if p in TARGETS]
    return set(named[:1]) if named else set(TARGETS)


def _widget_exprs(w: WidgetSpec) -> list[str]:
    """Every CEL expression of a widget: its rule, confidence, templates and drivers."""
    return [
        _expr(w.when),
        *([w.confidence] if isinstance(w.confidence, str) else []),
        *_strings(w.props),
        *_strings(w.why.summary),
        *w.why.drivers,
    ]


def sample_items(vocab: Vocabulary, source: str) -> list[dict[str, Any]]:
    """Items like the recommender's for `source`, to check fed widgets with when layouts load."""
    if source == "recs.integrations":
        return [
            {
                "id": i,
                "name": spec.name,
                "connect_href": spec.connect_href or f"/settings/integrations/{i}/connect",
                "peer_adoption": {"share": 0.7, "cohort": "healthcare, 10\u201350 seats"},
            }
            for i, spec in list(vocab.presets.integrations.items())[:3]
        ]
    if source == "recs.templates":
        industries = [vocab.presets.default, *vocab.presets.industries.values()]
        templates = [t for industry in industries for t in industry.templates][:3]
        return [
            {
                "id": t.id,
                "name": t.name,
                "href": t.href or f"/templates/{t.id}",
                "reason": "Teams like yours start here.",
            }
            for t in templates
        ]
    return [
        {"id": a.id, "title": a.title, "href": a.href, "kind": a.kind, "summary": a.summary}
        for a in vocab.help.articles[:1]
    ]


def _compile_screen(
    src: Source, spec: ScreenSpec, compiler: _Compiler, vocab: Vocabulary
) -> CompiledScreen | None:
    view_ids = [v.id for v in spec.views]
    before = len(compiler.problems)
    if spec.default_view not in view_ids:
        compiler.problems.append(
            src.at(("default_view",), f"default_view '{spec.default_view}' is not a view")
        )
    seen: dict[str, Path_] = {}
    slots = []
    order = 0
    for si, slot in enumerate(spec.slots):
        widgets = []
        for wi, w in enumerate(slot.widgets):
            base: Path_ = ("slots", si, "widgets", wi)
            order += 1
            if w.id in seen:
                compiler.problems.append(src.at((*base, "id"), f"widget id '{w.id}' is used twice"))
            seen[w.id] = base
            kind = WIDGET_KINDS.get(w.type)
            if kind is None:
                compiler.problems.append(
                    src.at(
                        (*base, "type"),
                        f"unknown widget type '{w.type}' (known: {', '.join(WIDGET_KINDS)})",
                    )
                )
                continue
            for vi, v in enumerate(w.views):
                if v not in view_ids:
                    compiler.problems.append(src.at((*base, "views", vi), f"unknown view '{v}'"))
            compiled = _compile_widget(src, base, w, slot.id, order, kind, compiler, vocab)
            if len(compiler.problems) == before:
                _check_props(src, base, compiled, compiler, vocab)
            widgets.append(compiled)
        slots.append(CompiledSlot(id=slot.id, max=slot.max, widgets=tuple(widgets)))
    _check_replaces(src, spec, seen, compiler)
    if len(compiler.problems) > before:
        return None
    return CompiledScreen(
        spec=spec,
        source=src.file,
        slots=tuple(slots),
        families=_families(spec),
        propensity_targets=_screen_propensity_targets(spec, compiler),
        flag_reads=_screen_flag_reads(spec, compiler),
    )


def _compile_widget(
    src: Source,
    base: Path_,
    w: WidgetSpec,
    slot_id: str,
    order: int,
    kind: WidgetKind,
    compiler: _Compiler,
    vocab: Vocabulary,
) -> CompiledWidget:
    """One widget's rule, confidence, props, why and fallback, compiled (problems recorded)."""
    schema = compiler.schema
    if w.feed is not None:
        if w.feed.min < 1 or w.feed.max < w.feed.min:
            compiler.problems.append(src.at((*base, "feed"), "feed needs 1 <= min <= max"))
        name = w.feed.source.removeprefix("recs.")
        compiler.schema = {**schema, "feed": sample_feed(name, sample_items(vocab, w.feed.source))}
    when = compiler.program(src, (*base, "when"), _expr(w.when))
    confidence: Any = w.confidence
    if isinstance(w.confidence, str):
        confidence = compiler.program(src, (*base, "confidence"), w.confidence)
    props = compiler.props(src, (*base, "props"), w.props)
    summary = compiler.template(src, (*base, "why", "summary"), w.why.summary)
    drivers = tuple(
        (d, compiler.program(src, (*base, "why", "drivers", di), d))
        for di, d in enumerate(w.why.drivers)
    )
    fallback = None
    if not isinstance(w.fallback, str):
        if w.fallback.type not in WIDGET_KINDS:
            compiler.problems.append(
                src.at((*base, "fallback", "type"), f"unknown widget type '{w.fallback.type}'")
            )
        else:
            fallback = CompiledFallback(
                w.fallback.type,
                compiler.props(src, (*base, "fallback", "props"), w.fallback.props),
            )
    compiler.schema = schema
    return CompiledWidget(
        spec=w,
        slot=slot_id,
        order=order,
        when=when,
        confidence=confidence,
        props=props,
        summary=summary if isinstance(summary, Template) else Template((summary,)),
        drivers=drivers,
        purposes=compiler.purposes(
            _widget_exprs(w), vocab, w.feed.source if w.feed is not None else None
        ),
        fallback=fallback,
        once_per_screen=kind.once_per_screen,
    )


def _check_replaces(
    src: Source, spec: ScreenSpec, seen: dict[str, Path_], compiler: _Compiler
) -> None:
    """Every widget a widget `replaces` is another widget of the same screen."""
    for si, slot in enumerate(spec.slots):
        for wi, w in enumerate(slot.widgets):
            for ri, replaced in enumerate(w.replaces):
                if replaced not in seen or replaced == w.id:
                    compiler.problems.append(
                        src.at(
                            ("slots", si, "widgets", wi, "replaces", ri),
                            f"'{replaced}' is not another widget of this screen",
                        )
                    )


def _screen_propensity_targets(spec: ScreenSpec, compiler: _Compiler) -> frozenset[str]:
    """The propensity targets the screen's rules read: only those are scored for it."""
    targets: set[str] = set()
    for slot in spec.slots:
        for w in slot.widgets:
            for expr in _widget_exprs(w):
                for dotted, _ in compiler.references(expr):
                    targets |= _propensity_targets(dotted)
    return frozenset(targets)


def _screen_flag_reads(spec: ScreenSpec, compiler: _Compiler) -> frozenset[str]:
    """The flags the screen's rules read (`flags.<key>...`): those are evaluated for it."""
    return frozenset(
        dotted.split(".")[1]
        for slot in spec.slots
        for w in slot.widgets
        for expr in _widget_exprs(w)
        for dotted, _ in compiler.references(expr)
        if dotted.startswith("flags.")
    )


def _families(spec: ScreenSpec) -> dict[str, tuple[str, ...]]:
    """Widget → the widgets it replaces or is replaced by: dismissing one rests them all."""
    families: dict[str, set[str]] = {}
    for slot in spec.slots:
        for w in slot.widgets:
            for replaced in w.replaces:
                families.setdefault(w.id, set()).add(replaced)
                families.setdefault(replaced, set()).add(w.id)
    return {k: tuple(sorted(v)) for k, v in families.items()}


def _check_props(
    src: Source, base: Path_, widget: CompiledWidget, compiler: _Compiler, vocab: Vocabulary
) -> None:
    """Render the props for a sample user and check them against the widget type's schema."""
    import msgspec

    from app.engine.profile import ProfileData

    sample = ProfileData(
        tenant_id="t",
        user_id="u",
        known=True,
        user_traits={"role": "admin"},
        tenant_traits={"plan": "trial", "industry": "healthcare"},
    )
    ctx = build_context(
        sample, vocab, now=__import__("datetime").datetime(2026, 1, 1), mode="full", screen="home"
    )
    ctx["flags"] = compiler.schema.get("flags") or {}
    if widget.feed is not None:
        name = widget.feed.source.removeprefix("recs.")
        ctx["feed"] = sample_feed(name, sample_items(vocab, widget.feed.source))
    env = cel.Context(ctx)
    targets = [((*base, "props"), widget.type, widget.props)]
    if widget.fallback is not None:
        targets.append(((*base, "fallback", "props"), widget.fallback.type, widget.fallback.props))
    for path, type_name, tree in targets:
        try:
            rendered = render(tree, env, ctx)
        except (RuntimeError, ValueError, TypeError) as exc:
            compiler.problems.append(src.at(path, f"props cannot be rendered: {exc}"))
            continue
        try:
            convert(src, rendered, WIDGET_KINDS[type_name].props, base=path)
        except SourceError as exc:
            compiler.problems.append(exc.problem)
        except msgspec.ValidationError as exc:  # pragma: no cover - convert maps these
            compiler.problems.append(src.at(path, str(exc)))
