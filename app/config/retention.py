"""Load and check layouts/retention.yaml: every problem as `file:line:col: message`."""

from __future__ import annotations

from app.config.yaml_source import Problem, Source, SourceError, convert
from app.engine.retention import MAX_DAYS, Retention, RetentionFileSpec, parse_window

MAX_DEDUP_DAYS = 90


def load_retention(src: Source, problems: list[Problem]) -> Retention:
    """The windows of retention.yaml; each bad window or key is a problem."""
    try:
        shape = convert(src, src.data, RetentionFileSpec)
    except SourceError as exc:
        problems.append(exc.problem)
        return Retention()
    spec = shape.retention
    base = ("retention",)
    expected = f"a window: 'keep' or a number of days such as '90d' (at most {MAX_DAYS}d)"
    default = parse_window(spec.default)
    if default is None:
        problems.append(src.at((*base, "default"), f"expected {expected}"))
    if not 1 <= spec.dedup_days <= MAX_DEDUP_DAYS:
        problems.append(src.at((*base, "dedup_days"), f"expected 1 to {MAX_DEDUP_DAYS} days"))
    by_event: dict[str, int] = {}
    for name, text in spec.events.items():
        where = (*base, "events", name)
        if not name or name != name.strip() or len(name) > 200:
            problems.append(src.at(where, "an event's name or a call type", key=True))
            continue
        days = parse_window(text)
        if days is None:
            problems.append(src.at(where, f"expected {expected}"))
            continue
        by_event[name] = days
    return Retention(default_days=default or 0, dedup_days=spec.dedup_days, by_event=by_event)
