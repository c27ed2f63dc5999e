"""Flag evaluation counts: what each flag served, per day, variant and reader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from app.storage.db import Pool

Count = tuple[str, date, str, str, int]  # flag, day, variant, source, n


async def add_evaluations(pool: Pool, counts: Iterable[Count]) -> None:
    """Add counts (summed into what is stored), in one statement."""
    rows = list(counts)
    if not rows:
        return
    flags, days, variants, sources, ns = (list(col) for col in zip(*rows, strict=True))
    await pool.execute(
        "INSERT INTO flag_evaluations (flag, day, variant, source, n)"
        " SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[])"
        " ON CONFLICT (flag, day, variant, source)"
        " DO UPDATE SET n = flag_evaluations.n + EXCLUDED.n",
        flags,
        days,
        variants,
        sources,
        ns,
    )


@dataclass(frozen=True, slots=True)
class FlagUsage:
    """What one flag served since a day: by variant, and by reader."""

    first_day: date
    variants: dict[str, int]
    sources: dict[str, int]


async def usage_since(pool: Pool, since: date) -> dict[str, FlagUsage]:
    rows = await pool.fetch(
        "SELECT flag, min(day) AS first_day, variant, source, sum(n)::bigint AS n"
        " FROM flag_evaluations WHERE day >= $1 GROUP BY flag, variant, source",
        since,
    )
    first: dict[str, date] = {}
    variants: dict[str, dict[str, int]] = {}
    sources: dict[str, dict[str, int]] = {}
    for r in rows:
        flag = r["flag"]
        first[flag] = min(first.get(flag, r["first_day"]), r["first_day"])
        by_variant = variants.setdefault(flag, {})
        by_variant[r["variant"]] = by_variant.get(r["variant"], 0) + r["n"]
        by_source = sources.setdefault(flag, {})
        by_source[r["source"]] = by_source.get(r["source"], 0) + r["n"]
    return {f: FlagUsage(first[f], variants[f], sources[f]) for f in first}


async def first_recorded(pool: Pool) -> dict[str, date]:
    """The first day each flag was ever evaluated."""
    rows = await pool.fetch("SELECT flag, min(day) AS d FROM flag_evaluations GROUP BY flag")
    return {r["flag"]: r["d"] for r in rows}
