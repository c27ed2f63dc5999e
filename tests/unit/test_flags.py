"""Flags: bucketing as GrowthBook's SDK specification publishes it, sticky rollouts, every exit of
an evaluation with its OpenFeature reason, flags in layouts and descriptors, and the designers'
mistakes as file:line:col."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from growthbook.core import gbhash, getBucketRanges
from hypothesis import given, settings
from hypothesis import strategies as st

from app.config.layouts import LayoutConfigError, load_layouts
from app.engine.bucketing import bucket_ranges, choose, salted_hash, unit_hash, user_unit
from app.engine.decide import DecisionInput, decide, flags_for
from app.engine.flags import FlagReason, FlagResult
from app.engine.model import Layouts
from app.engine.profile import ProfileData
from app.engine.reasons import Reason
from tests.paths import GOLDEN_DECISIONS_DIR, LAYOUTS_DIR, ROOT

SPEC = json.loads((ROOT / "tests/golden/bucketing/growthbook_spec.json").read_text())
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
STUCK_AT = datetime(2026, 11, 27, 10, tzinfo=UTC)  # the golden case's now


# --- bucketing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("salt", "unit", "expected"), SPEC["hash_v2"])
def test_hash_matches_growthbooks_published_cases(salt: str, unit: str, expected: float) -> None:
    assert unit_hash(salt, unit) == expected


@pytest.mark.parametrize(("name", "weights", "coverage", "expected"), SPEC["bucket_ranges"])
def test_bucket_ranges_match_growthbooks_published_cases(
    name: str, weights: list[float], coverage: float, expected: list[list[float]]
) -> None:
    got = bucket_ranges(weights, coverage)
    flat = [x for r in got for x in r]
    assert flat == pytest.approx([x for r in expected for x in r]), name


@settings(max_examples=300, deadline=None)
@given(salt=st.text(max_size=30), unit=st.text(max_size=60))
def test_hash_equals_growthbooks_sdk_for_any_text(salt: str, unit: str) -> None:
    """Including non-ASCII text (hashed over UTF-16 code units, as JavaScript reads strings)."""
    assert unit_hash(salt, unit) == gbhash(salt, unit, 2)


@settings(max_examples=300, deadline=None)
@given(salt=st.text(max_size=30), unit=st.text(max_size=60))
def test_a_flags_salted_hash_is_the_same_hash(salt: str, unit: str) -> None:
    """The salt's part hashed once and the unit's continued from it: the same answer."""
    assert salted_hash(salt)(unit) == unit_hash(salt, unit) == salted_hash(salt)(unit)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=6))
def test_bucket_ranges_equal_growthbooks_sdk(parts: list[int]) -> None:
    weights = [p / sum(parts) for p in parts]
    ours = [x for r in bucket_ranges(weights) for x in r]
    theirs = [x for r in getBucketRanges(len(weights), 1, weights) for x in r]
    assert ours == pytest.approx(theirs)


def test_user_units_are_tenant_qualified() -> None:
    """User ids are unique within a tenant only: u1 of two tenants are two units."""
    assert user_unit("acme", "u1") == "acme:u1"
    assert unit_hash("f", user_unit("acme", "u1")) != unit_hash("f", user_unit("globex", "u1"))


def test_every_hash_falls_in_exactly_one_range() -> None:
    ranges = bucket_ranges([0.1, 0.3, 0.6])
    for i in range(10_000):
        n = unit_hash("salt", f"t:{i}")
        assert 0 <= n < 1
        assert choose(n, ranges) in (0, 1, 2)


# --- evaluation ---------------------------------------------------------------------------------


def flag_blocks(text: str) -> dict[str, str]:
    """The flags of a flags.yaml text, each as its lines (keys at two spaces of indentation)."""
    blocks: dict[str, str] = {}
    key = None
    for line in text.split("\nflags:\n", 1)[-1].splitlines():
        m = re.match(r"^  ([a-z][a-z0-9_]*):\s*$", line)
        if m:
            key = m.group(1)
            blocks[key] = ""
        if key is not None:
            blocks[key] += line + "\n"
    return blocks


SHIPPED_FLAGS = flag_blocks((LAYOUTS_DIR / "flags.yaml").read_text())


def with_flags(tmp_path: Path, flags_yaml: str) -> Path:
    """The shipped layouts with these flags first in flags.yaml, then the shipped ones that the
    shipped screens read (a flag of the same key replaces the shipped one)."""
    target = tmp_path / "layouts"
    shutil.copytree(LAYOUTS_DIR, target)
    own = flags_yaml.split("flags:\n", 1)[1]
    mine = flag_blocks("\nflags:\n" + own)
    rest = "".join(block for key, block in SHIPPED_FLAGS.items() if key not in mine)
    (target / "flags.yaml").write_text("flags:\n" + own.rstrip("\n") + "\n" + rest)
    return target


def load(tmp_path: Path, flags_yaml: str) -> Layouts:
    return load_layouts(with_flags(tmp_path, flags_yaml))


def profile(
    user: str = "u1", tenant: str = "acme", role: str = "admin", **tenant_traits: Any
) -> ProfileData:
    return ProfileData(
        tenant_id=tenant,
        user_id=user,
        known=True,
        user_traits={"role": role},
        tenant_traits={"plan": "trial", "industry": "software", **tenant_traits},
    )


def flag(
    layouts: Layouts, key: str, p: ProfileData | None = None, now: datetime = NOW
) -> FlagResult:
    return flags_for(layouts, [key], p or profile(), "full", now).results[key]


RAMP = """
flags:
  ramp:
    variants: {{on: true, off: false}}
    default: off
    rules:
      - rollout: {{on: {on}, off: {off}}}
"""


def test_a_rollout_serves_its_share_and_says_split(tmp_path: Path) -> None:
    layouts = load(tmp_path, RAMP.format(on=10, off=90))
    results = [flag(layouts, "ramp", profile(user=f"u{i}")) for i in range(5000)]
    share = sum(r.value is True for r in results) / len(results)
    assert 0.08 < share < 0.12
    assert {r.reason for r in results} == {FlagReason.SPLIT}


def test_growing_a_rollout_keeps_everyone_who_had_it(tmp_path: Path) -> None:
    """Raising `on` from 10 to 30 only moves units into `on`, in either order of the variants."""
    users = [profile(user=f"u{i}", tenant=f"t{i % 7}") for i in range(3000)]
    for template in (RAMP, RAMP.replace("{{on: {on}, off: {off}}}", "{{off: {off}, on: {on}}}")):
        before = load(tmp_path / "a", template.format(on=10, off=90))
        after = load(tmp_path / "b", template.format(on=30, off=70))
        had = {p.user_id for p in users if flag(before, "ramp", p).value}
        has = {p.user_id for p in users if flag(after, "ramp", p).value}
        assert had and had <= has
        assert 0.25 < len(has) / len(users) < 0.35
        shutil.rmtree(tmp_path / "a")
        shutil.rmtree(tmp_path / "b")


TARGETED = """
flags:
  new_onboarding:
    variants: {on: true, off: false}
    default: off
    enabled: true
    rules:
      - when: "tenant.plan == 'trial' && user.role == 'admin'"
        serve: on
      - rollout: {on: 0, off: 100}
  static_flag:
    variants: {a: 1, b: 2}
    default: b
  off_switch:
    variants: {on: true, off: false}
    default: off
    enabled: false
    rules:
      - serve: on
  colour:
    unit: tenant
    variants: {red: {hex: "#f00"}, blue: {hex: "#00f"}}
    default: red
    rules:
      - rollout: {red: 50, blue: 50}
  needs_onboarding:
    variants: {on: true, off: false}
    default: off
    prerequisites: [{flag: new_onboarding, variants: [on]}]
    rules:
      - serve: on
  campaign:
    variants: {on: true, off: false}
    default: off
    schedule: {start: 2026-12-01T00:00:00Z, end: 2026-12-24T00:00:00Z}
    rules:
      - serve: on
  broken_rule:
    variants: {on: true, off: false}
    default: off
    rules:
      - when: "int(tenant.region) > 3"
        serve: on
"""


def test_every_exit_has_its_reason(tmp_path: Path) -> None:
    layouts = load(tmp_path, TARGETED)
    admin, maker = profile(role="admin"), profile(role="maker")

    hit = flag(layouts, "new_onboarding", admin)
    assert (hit.value, hit.variant, hit.reason, hit.rule) == (
        True, "on", FlagReason.TARGETING_MATCH, 0
    )  # fmt: skip
    miss = flag(layouts, "new_onboarding", maker)
    assert (miss.value, miss.reason, miss.rule) == (False, FlagReason.SPLIT, 1)
    assert (flag(layouts, "static_flag").value, flag(layouts, "static_flag").reason) == (
        2, FlagReason.STATIC
    )  # fmt: skip
    killed = flag(layouts, "off_switch")
    assert (killed.value, killed.reason) == (False, FlagReason.DISABLED)
    assert flag(layouts, "needs_onboarding", admin).value is True
    blocked = flag(layouts, "needs_onboarding", maker)
    assert (blocked.value, blocked.reason) == (False, FlagReason.DEFAULT)
    assert "prerequisite new_onboarding" in blocked.detail
    assert flag(layouts, "campaign", now=NOW).reason == FlagReason.TARGETING_MATCH
    late = flag(layouts, "campaign", now=datetime(2026, 12, 24, tzinfo=UTC))
    assert (late.value, late.reason) == (False, FlagReason.DISABLED)
    err = flag(layouts, "broken_rule", profile(region="eu-west"))
    assert (err.value, err.variant, err.reason) == (False, "off", FlagReason.ERROR)


def test_tenant_flags_bucket_the_whole_tenant_together(tmp_path: Path) -> None:
    layouts = load(tmp_path, TARGETED)
    for t in range(40):
        values = {
            json.dumps(flag(layouts, "colour", profile(user=f"u{u}", tenant=f"t{t}")).value)
            for u in range(6)
        }
        assert len(values) == 1
    tenants = {flag(layouts, "colour", profile(tenant=f"t{t}")).variant for t in range(40)}
    assert tenants == {"red", "blue"}


def test_flags_read_declared_traits_whatever_the_personalization(tmp_path: Path) -> None:
    """Flags are the product's switches: an opted-out (or held-out) user's flags still read
    their declared traits; an unknown user's see nothing and are bucketed on the ids alone."""
    layouts = load(tmp_path, TARGETED)
    opted_out = flags_for(layouts, ["new_onboarding", "colour"], profile(), "default", NOW)
    assert opted_out.results["new_onboarding"].reason == FlagReason.TARGETING_MATCH
    stranger = msgspec.structs.replace(profile(), known=False, user_traits={}, tenant_traits={})
    unknown = flags_for(layouts, ["new_onboarding", "colour"], stranger, "default", NOW).results
    assert unknown["new_onboarding"].reason == FlagReason.SPLIT  # the targeting cannot hold
    full = flags_for(layouts, ["colour"], profile(), "full", NOW).results
    assert unknown["colour"].variant == full["colour"].variant  # the same bucket


# --- flags in layouts ---------------------------------------------------------------------------


def decide_on(layouts: Layouts, p: ProfileData, screen: str = "editor") -> Any:
    inp = DecisionInput(screen=screen, profile=p, mode="full", now=STUCK_AT, seed=1)
    return decide(layouts, inp)


def stuck_maker() -> ProfileData:
    """The golden corpus's maker with three automation errors in ten minutes."""
    case = json.loads((GOLDEN_DECISIONS_DIR / "friction_help_tip.json").read_text())
    return msgspec.convert(case["profile"], ProfileData)


def test_layout_rules_read_flags_and_the_kill_switch_removes_widgets(tmp_path: Path) -> None:
    shipped = load_layouts(LAYOUTS_DIR)
    on = decide_on(shipped, stuck_maker())
    shown = {w.id for s in on.descriptor.slots for w in s.widgets}
    assert "editor_help_tip" in shown
    assert on.flags["adaptive_help"].value is True

    flags = (LAYOUTS_DIR / "flags.yaml").read_text()
    switched = flags.replace("  adaptive_help:\n", "  adaptive_help:\n    enabled: false\n")
    assert switched != flags
    off = decide_on(load(tmp_path, switched), stuck_maker())
    shown = {w.id for s in off.descriptor.slots for w in s.widgets}
    assert "editor_help_tip" not in shown
    reasons = {e.widget_id: e.reason for e in off.trace}
    assert reasons["editor_help_tip"] == Reason.RULE_FALSE
    assert off.flags["adaptive_help"].reason == FlagReason.DISABLED


def test_the_descriptor_carries_client_flags_only() -> None:
    layouts = load_layouts(LAYOUTS_DIR)
    decision = decide_on(layouts, profile(role="admin"), screen="home")
    assert set(decision.descriptor.flags) == set(layouts.client_flags)
    assert "new_editor" in decision.descriptor.flags
    assert "adaptive_help" not in decision.descriptor.flags  # read by rules, not sent
    assert decision.descriptor.flags["new_editor"] is True  # trial admin: targeted


# --- designers' mistakes ------------------------------------------------------------------------


def problems(tmp_path: Path, flags_yaml: str) -> list[str]:
    with pytest.raises(LayoutConfigError) as info:
        load(tmp_path, flags_yaml)
    return [str(p) for p in info.value.problems]


def test_a_rollout_not_adding_up_to_100_is_pointed_at(tmp_path: Path) -> None:
    found = problems(tmp_path, RAMP.format(on=10, off=80))
    assert found == ["layouts/flags.yaml:6:18: rollout percentages add up to 90, not 100"]


def test_a_rollout_over_100_is_pointed_at(tmp_path: Path) -> None:
    found = problems(tmp_path, RAMP.format(on=120, off=-20))
    assert found == [
        "layouts/flags.yaml:6:23: 'on' gets 120%: each share is 0 to 100",
        "layouts/flags.yaml:6:33: 'off' gets -20%: each share is 0 to 100",
    ]


def test_unknown_variants_and_prerequisites_are_pointed_at(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "flags:\n"
        "  a:\n"
        "    variants: {on: true, off: false}\n"
        "    default: maybe\n"
        "    prerequisites: [{flag: b, variants: [on]}]\n"
        "    rules:\n"
        "      - serve: yes\n"
        "      - rollout: {on: 50, other: 50}\n"
        "  b:\n"
        "    variants: {on: true}\n"
        "    default: on\n"
        "    prerequisites: [{flag: a, variants: [on]}]\n",
    )
    assert "layouts/flags.yaml:4:14: 'maybe' is not a variant (variants: on, off)" in found
    assert "layouts/flags.yaml:7:16: 'yes' is not a variant (variants: on, off)" in found
    assert "layouts/flags.yaml:8:27: 'other' is not a variant (variants: on, off)" in found
    assert any("prerequisites cycle: a → b → a" in p or "b → a → b" in p for p in found), found


def test_a_layout_reading_an_undefined_flag_is_pointed_at(tmp_path: Path) -> None:
    target = with_flags(tmp_path, (LAYOUTS_DIR / "flags.yaml").read_text())
    editor = target / "screens" / "editor.yaml"
    text = editor.read_text().replace("when: flags.peer_recommendations\n", "when: flags.nope\n")
    editor.write_text(text)
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(target)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith("layouts/screens/editor.yaml:")
    assert "unknown flag 'nope' (flags.yaml defines: adaptive_help, checklist_style" in problem


def test_flag_rules_are_cel_checked_against_the_signals(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "flags:\n  a:\n    variants: {on: true, off: false}\n    default: off\n"
        "    rules:\n      - when: user.rank > 3\n        serve: on\n",
    )
    assert len(found) == 1 and found[0].startswith("layouts/flags.yaml:6:15: unknown signal")


# --- the stale-flag report ----------------------------------------------------------------------

STALE = """
flags:
  expired:
    variants: {on: true, off: false}
    default: off
    expires: 2026-11-01
    rules:
      - when: "user.role == 'admin'"
        serve: on
  everyone_on:
    variants: {on: true, off: false}
    default: off
    rules:
      - serve: on
  kill_switch:
    permanent: true
    variants: {on: true, off: false}
    default: off
    rules:
      - serve: on
  one_in_practice:
    client: true
    variants: {on: true, off: false}
    default: off
    rules:
      - when: "tenant.plan == 'enterprise'"
        serve: on
  fresh:
    client: true
    variants: {on: true, off: false}
    default: off
    rules:
      - rollout: {on: 50, off: 50}
  nobody_reads:
    variants: {on: true, off: false}
    default: off
    rules:
      - rollout: {on: 50, off: 50}
  a_client_reads:
    variants: {on: true, off: false}
    default: off
    rules:
      - rollout: {on: 50, off: 50}
"""


def test_the_stale_report_names_each_kind_of_stale_flag(tmp_path: Path) -> None:
    from datetime import date

    from app.serving.flags import stale_flags
    from app.storage.flags import FlagUsage

    layouts = load(tmp_path, STALE)
    today = date(2026, 12, 7)
    long_ago, lately = date(2026, 9, 1), date(2026, 12, 1)
    usage = {
        "one_in_practice": FlagUsage(lately, {"off": 900}, {"layout": 900}),
        "fresh": FlagUsage(lately, {"off": 10}, {"layout": 10}),
        "a_client_reads": FlagUsage(lately, {"on": 5, "off": 5}, {"ofrep": 10}),
    }
    first = {"one_in_practice": long_ago, "fresh": lately, "a_client_reads": lately}
    report = {s.key: s.reasons for s in stale_flags(layouts, usage, first, today)}
    assert report["expired"][0] == "expired on 2026-11-01"
    assert report["everyone_on"][0] == "can serve only 'on', whoever asks"
    assert "kill_switch" not in report or all("only" not in r for r in report["kill_switch"])
    assert report["one_in_practice"] == ["served 'off' to everyone for 30 days"]
    assert "fresh" not in report  # one variant so far, but seen for less than 30 days
    assert report["nobody_reads"] == [
        "no layout rule reads it and no OpenFeature client asked for it in 30 days"
    ]
    assert "a_client_reads" not in report
    assert "adaptive_help" not in report  # read by the shipped layouts, and permanent


COMPILED = """
flags:
  by_traits:
    variants: {on: true, off: false}
    default: off
    rules:
      - when: "tenant.plan in ['pro', 'enterprise'] && user.role != 'end_user'"
        serve: on
      - when: "tenant.industry == 'healthcare' || tenant.seats >= 50"
        serve: off
      - rollout: {on: 30, off: 70}
  typed:
    variants: {small: "s", large: {seats: "many"}}
    default: small
    unit: tenant
    rules:
      - when: "tenant.seats > 10"
        rollout: {large: 60, small: 40}
  plain_path:
    variants: {a: 1, b: 2}
    default: a
    rules:
      - when: "user.stage"
        serve: b
"""


@settings(max_examples=300, deadline=None)
@given(
    plan=st.sampled_from(["trial", "pro", "enterprise", "", 3]),
    role=st.sampled_from(["admin", "maker", "end_user", ""]),
    industry=st.sampled_from(["healthcare", "software", None]),
    seats=st.one_of(st.integers(0, 200), st.sampled_from(["12", None, 3.5])),
    stage=st.sampled_from([True, False, "new", None]),
    user=st.text(min_size=1, max_size=12),
)
def test_a_flag_compiled_whole_answers_as_its_rules_do(
    compiled_flags: Layouts,
    plan: Any,
    role: str,
    industry: Any,
    seats: Any,
    stage: Any,
    user: str,
) -> None:
    """Each flag runs as one Python function; evaluating its rules one by one (CEL on any error)
    gives the same answer, reason, rule and bucket, type errors and missing signals included."""
    import dataclasses

    from app.engine.flags import Unit, evaluate_flag
    from app.engine.paths import LazyContext

    variables = {
        "tenant": {"plan": plan, "industry": industry, "seats": seats},
        "user": {"role": role, "stage": stage} if stage is not None else {"role": role},
    }
    env = LazyContext(variables, compiled_flags.context_trie)
    unit = Unit("acme", user)
    for key in ("by_traits", "typed", "plain_path"):
        whole = compiled_flags.flags[key]
        assert whole.fast is not None, key
        by_rules = dataclasses.replace(whole)
        object.__setattr__(by_rules, "fast", None)
        got = evaluate_flag(whole, unit, variables, env, NOW, lambda k: flag(compiled_flags, k))
        expected = evaluate_flag(
            by_rules, unit, variables, env, NOW, lambda k: flag(compiled_flags, k)
        )
        assert got == expected, (key, variables)


@pytest.fixture(scope="module")
def compiled_flags(tmp_path_factory: pytest.TempPathFactory) -> Layouts:
    return load(tmp_path_factory.mktemp("compiled"), COMPILED)
