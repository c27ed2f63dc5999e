"""Why a widget was left out of a decision: a code for programs, a sentence for people. Pure.

As OpenFeature's evaluation details carry a `reason`, every widget a decision leaves out carries an
`Exclusion`: a `Reason` code (stable; tests, dashboards and the admin inspector read it) and a
detail sentence (for people; it may change wording at any time).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    NOT_FOR_VIEW = "not_for_view"  # the widget is only for other views
    NOT_IN_DEFAULT = "not_in_default"  # the layout is not personalized; not a default widget
    CONSENT = "consent"  # it rests on a purpose the user has not granted (see signals.yaml)
    DISMISSED = "dismissed"  # the user dismissed it; resting for its cool-down
    FAMILY_DISMISSED = "family_dismissed"  # a widget it replaces (or that replaces it) was
    COMPLETED = "completed"  # the user completed it
    VIEW_CAP = "view_cap"  # shown as often as its suppression allows
    RECOMMENDER_UNAVAILABLE = "recommender_unavailable"  # fed, and the recommender did not answer
    TOO_FEW_CANDIDATES = "too_few_candidates"  # fed, with fewer candidates than it needs
    RULE_FALSE = "rule_false"  # its `when` rule does not hold
    RULE_ERROR = "rule_error"  # its rule could not be evaluated for this user
    LOW_CONFIDENCE = "low_confidence"  # its confidence is below the floor
    PROPS_ERROR = "props_error"  # its props could not be built for this user
    REPLACED = "replaced"  # a widget that replaces it is shown
    ONCE_PER_SCREEN = "once_per_screen"  # its group (next step, modal) has a widget shown
    SLOT_FULL = "slot_full"  # its slot holds as many widgets as it may
    EXPERIMENT = "experiment"  # the user's experiment arm hides it, or swaps it for another
    POLICY = "policy"  # a policy of policies.yaml forbids it here (forbid wins)


@dataclass(frozen=True, slots=True)
class Exclusion:
    widget_id: str
    reason: Reason
    detail: str  # the reason in a sentence, with what this decision saw
