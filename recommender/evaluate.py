"""Offline evaluation: popularity, item-kNN and Cairn's recommender on held-out interactions.

Input is any interactions table (user, item, time), for instance a CSV with the header
`user_id,item_id,timestamp` (ISO 8601 or epoch seconds), and optionally a text per item that is
embedded. The CSV may carry a `group_id` column too: the account or workspace (in Cairn, the
tenant) each user works in; a user belongs to one group. The split is temporal per user: each
user's distinct items are ordered by first use and the last 20% are held out (users with fewer than
two distinct items only train). Every model recommends 10 items per test user, never one the user
already has in training, and is scored with

- recall@10: held-out items found, over min(10, held-out items);
- nDCG@10: binary relevance, ideal = all held-out items first;
- coverage: distinct items recommended to anyone, over all items known.

Popularity and item-kNN never look at groups. Cairn's recommender blends up to six scores, each
scaled to [0, 1] per user:
1. item-kNN (cosine on co-occurrence) over the user's history weighted by recency;
2. EASE (a closed-form linear item-to-item model, Steck 2019), for catalogs of up to a few
   thousand items; with groups, its inputs also hold, per item, the share of the user's teammates
   (the other users of the group) who use it, so that it learns what a team's adoption says about
   its members' next items;
3. "what comes next": directed co-occurrence, item j used shortly before item i;
4. content: the embedding similarity of each item to the user's recency-weighted profile vector
   (when item texts are given);
5. popularity;
6. teammates: the share of the user's teammates who use each item (with groups);
with the kNN, EASE and next-item scores divided by popularity**beta to favour specific items.
Teammates' items come from the training rows only, like everything else. The recency half-life,
EASE's regularisation, the teammates' weight among EASE's inputs, beta and the blend weights are
tuned on a validation split carved the same way out of the training data (never on the test
split), then the model is refit on all training data.

Everything is vectorised with numpy and scipy sparse matrices; 100k interactions take seconds to
fit, and the tuning about a minute on two cores.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = [
    "CairnParams",
    "CairnRecommender",
    "EvalReport",
    "Interactions",
    "ItemKNN",
    "K",
    "ModelScores",
    "Popularity",
    "Split",
    "evaluate",
    "format_report",
    "parse_timestamp",
    "read_interactions",
    "read_item_texts",
    "temporal_split",
]

K: Final = 10
_BATCH: Final = 1024  # users scored at once
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
Progress = Callable[[str], None]
FloatMatrix = NDArray[np.float32]


# --------------------------------------------------------------------------------------------------
# Data.


def parse_timestamp(value: str) -> float:
    """Epoch seconds from epoch seconds (int or float) or an ISO 8601 date or time."""
    text = value.strip()
    if _NUMBER.match(text):
        return float(text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class Interactions:
    """Interaction rows as integer user and item indexes, with the ids they stand for.

    `groups`, when known, gives each user's group index (-1: none), naming `group_ids`: the
    account or workspace (tenant) the user works in.
    """

    users: NDArray[np.int64]
    items: NDArray[np.int64]
    times: NDArray[np.float64]
    user_ids: list[str]
    item_ids: list[str]
    groups: NDArray[np.int64] | None = None
    group_ids: list[str] = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[str, str, float]],
        item_ids: Sequence[str] = (),
        groups: Mapping[str, str] | None = None,
    ) -> Interactions:
        """From (user id, item id, epoch seconds); `item_ids` adds items nobody used; `groups`
        maps user ids to group ids (users it lacks have no group)."""
        user_index: dict[str, int] = {}
        item_index: dict[str, int] = {i: n for n, i in enumerate(dict.fromkeys(item_ids))}
        users: list[int] = []
        items: list[int] = []
        times: list[float] = []
        for user, item, at in records:
            users.append(user_index.setdefault(user, len(user_index)))
            items.append(item_index.setdefault(item, len(item_index)))
            times.append(at)
        group_of: NDArray[np.int64] | None = None
        group_index: dict[str, int] = {}
        if groups is not None:
            group_of = np.array(
                [
                    group_index.setdefault(groups[u], len(group_index)) if u in groups else -1
                    for u in user_index
                ],
                dtype=np.int64,
            )
        return cls(
            np.array(users, dtype=np.int64),
            np.array(items, dtype=np.int64),
            np.array(times, dtype=np.float64),
            list(user_index),
            list(item_index),
            group_of,
            list(group_index),
        )

    @property
    def n_groups(self) -> int:
        return len(self.group_ids)

    def subset(self, rows: NDArray[np.bool_]) -> Interactions:
        """The same index spaces (and groups), fewer rows."""
        return replace(self, users=self.users[rows], items=self.items[rows], times=self.times[rows])


def read_interactions(path: str | Path, item_ids: Sequence[str] = ()) -> Interactions:
    """A CSV with the header `user_id,item_id,timestamp` and optionally `group_id` (other columns
    are ignored). `group_id` names the account or workspace a user works in; a user belongs to one
    group (rows with an empty group_id say nothing about it)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = set(reader.fieldnames or ())
        missing = {"user_id", "item_id", "timestamp"} - header
        if missing:
            raise ValueError(f"{path}: the header lacks {', '.join(sorted(missing))}")
        with_groups = "group_id" in header
        groups: dict[str, str] = {}
        group_line: dict[str, int] = {}
        records: list[tuple[str, str, float]] = []
        for line, row in enumerate(reader, start=2):
            try:
                at = parse_timestamp(row["timestamp"] or "")
            except ValueError:
                raise ValueError(
                    f"{path}:{line}: timestamp {row['timestamp']!r} is neither ISO 8601 "
                    "nor epoch seconds"
                ) from None
            user, item = (row["user_id"] or "").strip(), (row["item_id"] or "").strip()
            if not user or not item:
                raise ValueError(f"{path}:{line}: empty user_id or item_id")
            records.append((user, item, at))
            group = (row.get("group_id") or "").strip() if with_groups else ""
            if group:
                known = groups.setdefault(user, group)
                group_line.setdefault(user, line)
                if known != group:
                    raise ValueError(
                        f"{path}:{line}: user {user!r} is in group {group!r} here and in "
                        f"{known!r} on line {group_line[user]}; a user belongs to one group "
                        "(for people in several, make the user id group-specific, "
                        "e.g. group:user)"
                    )
    return Interactions.from_records(records, item_ids, groups if with_groups else None)


def read_item_texts(path: str | Path) -> dict[str, str]:
    """A CSV with the header `item_id,text`."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"item_id", "text"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: the header lacks {', '.join(sorted(missing))}")
        return {
            (row["item_id"] or "").strip(): (row["text"] or "").strip()
            for row in reader
            if (row["item_id"] or "").strip()
        }


# --------------------------------------------------------------------------------------------------
# The split.


@dataclass(frozen=True)
class Split:
    """Training rows and, per test user, the held-out items."""

    train: Interactions
    test_users: NDArray[np.int64]
    test_items: list[NDArray[np.int64]]  # aligned with test_users

    @property
    def held_out(self) -> int:
        return sum(len(t) for t in self.test_items)


def _first_uses(data: Interactions) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[Any]]:
    """(user, item, first time) per distinct pair, ordered by user, then time, then item."""
    key = data.users * max(data.n_items, 1) + data.items
    order = np.lexsort((data.times, key))
    key_sorted = key[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = key_sorted[1:] != key_sorted[:-1]
    rows = order[first]
    users, items, times = data.users[rows], data.items[rows], data.times[rows]
    by_time = np.lexsort((items, times, users))
    return users[by_time], items[by_time], times[by_time]


def temporal_split(data: Interactions, holdout: float = 0.2, min_items: int = 2) -> Split:
    """Hold out each user's last `holdout` share of distinct items (at least one)."""
    users, items, _ = _first_uses(data)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else users
    counts = np.diff(np.r_[starts, len(users)])
    n_test = np.where(counts >= min_items, np.maximum(1, np.floor(holdout * counts)), 0)
    n_test = n_test.astype(np.int64)
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    in_test = rank >= np.repeat(counts - n_test, counts)
    test_pairs = set(zip(users[in_test].tolist(), items[in_test].tolist(), strict=True))
    key = data.users * max(data.n_items, 1) + data.items
    test_keys = np.array(sorted(u * max(data.n_items, 1) + i for u, i in test_pairs), np.int64)
    keep = ~np.isin(key, test_keys)
    test_users = users[in_test]
    test_items = items[in_test]
    bounds = np.flatnonzero(np.r_[True, test_users[1:] != test_users[:-1], True])
    grouped_users = test_users[bounds[:-1]] if len(test_users) else test_users
    grouped_items = [test_items[a:b] for a, b in itertools.pairwise(bounds)]
    return Split(data.subset(keep), grouped_users.astype(np.int64), grouped_items)


# --------------------------------------------------------------------------------------------------
# Shared matrices.


def _user_item(train: Interactions, values: NDArray[Any] | None = None) -> sp.csr_matrix:
    """Users x items, one per distinct pair (or the given values per first use)."""
    users, items, _ = _first_uses(train)
    data = np.ones(len(users), dtype=np.float32) if values is None else values
    return sp.csr_matrix(
        (data, (users, items)), shape=(train.n_users, train.n_items), dtype=np.float32
    )


def _recency_weights(train: Interactions, half_life: float) -> sp.csr_matrix:
    """Users x items: 0.5 ** (rank from the user's latest item / half_life)."""
    users, _, _ = _first_uses(train)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else users
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    from_end = np.repeat(counts, counts) - 1 - rank
    weights = np.ones(len(users)) if math.isinf(half_life) else np.power(0.5, from_end / half_life)
    return _user_item(train, weights.astype(np.float32))


def _top_k_rows(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row."""
    matrix = matrix.tocsr()
    indptr, data = matrix.indptr, matrix.data
    keep = np.zeros(len(data), dtype=bool)
    for row in range(matrix.shape[0]):
        a, b = indptr[row], indptr[row + 1]
        if b - a <= k:
            keep[a:b] = True
        else:
            keep[a + np.argpartition(-data[a:b], k - 1)[:k]] = True
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(indptr))
    return sp.csr_matrix(
        (data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape, dtype=np.float32
    )


def _cosine_item_item(x: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Item x item cosine of co-occurrence, diagonal removed, top `neighbours` per row."""
    co = (x.T @ x).tocsr().astype(np.float32)
    co.setdiag(0)
    co.eliminate_zeros()
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
    norm = np.sqrt(np.maximum(counts, 1.0))
    inv = sp.diags(1.0 / norm)
    sim = (inv @ co @ inv).tocsr()
    return _top_k_rows(sim, neighbours)


def _transitions(train: Interactions, window: int) -> sp.csr_matrix:
    """Item j → item i: how often i was among the next `window` distinct items after j, weighted
    1/gap, rows scaled to sum 1."""
    users, items, _ = _first_uses(train)
    rows: list[NDArray[np.int64]] = []
    cols: list[NDArray[np.int64]] = []
    vals: list[NDArray[np.float32]] = []
    for gap in range(1, window + 1):
        same = users[gap:] == users[:-gap]
        rows.append(items[:-gap][same])
        cols.append(items[gap:][same])
        vals.append(np.full(int(same.sum()), 1.0 / gap, dtype=np.float32))
    n = train.n_items
    t = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
        dtype=np.float32,
    )
    t.setdiag(0)
    t.eliminate_zeros()
    out_degree = np.asarray(t.sum(axis=1)).ravel()
    scale = np.divide(1.0, out_degree, out=np.zeros_like(out_degree), where=out_degree > 0)
    return (sp.diags(scale.astype(np.float32)) @ t).tocsr()


def _group_context(train: Interactions, x: sp.csr_matrix) -> sp.csr_matrix | None:
    """Users x items: the share of the user's teammates (the other users of their group) who use
    each item; None without groups of two or more users."""
    if train.groups is None or not train.n_groups:
        return None
    member = train.groups >= 0
    users = np.flatnonzero(member)
    size = np.bincount(train.groups[member], minlength=train.n_groups)
    if not np.any(size >= 2):
        return None
    membership = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, train.groups[users])),
        shape=(train.n_users, train.n_groups),
    )
    totals = (membership.T @ x).tocsr()
    others = (membership @ totals - sp.diags(member.astype(np.float32)) @ x).tocsr()
    mates = np.zeros(train.n_users, dtype=np.float32)
    mates[users] = size[train.groups[users]] - 1
    scale = np.divide(1.0, mates, out=np.zeros_like(mates), where=mates > 0)
    context = (sp.diags(scale) @ others).tocsr().astype(np.float32)
    context.eliminate_zeros()
    return context


def _popularity(train: Interactions) -> NDArray[np.float32]:
    """Distinct users per item."""
    x = _user_item(train)
    return np.asarray(x.sum(axis=0), dtype=np.float32).ravel()


def _row_max_scale(scores: FloatMatrix) -> FloatMatrix:
    peak = scores.max(axis=1, keepdims=True)
    out: FloatMatrix = np.divide(scores, peak, out=np.zeros_like(scores), where=peak > 0)
    return out


# --------------------------------------------------------------------------------------------------
# Models. Each is fitted on training rows and scores users x all items (higher is better).


class Popularity:
    name = "popularity"

    def __init__(self, train: Interactions) -> None:
        self._pop = _popularity(train)

    def scores(self, users: NDArray[np.int64]) -> FloatMatrix:
        return np.broadcast_to(self._pop, (len(users), len(self._pop))).copy()


class ItemKNN:
    """Classic item-based kNN: cosine on binary co-occurrence, `neighbours` per item, summed."""

    name = "item_knn"

    def __init__(self, train: Interactions, neighbours: int = 100) -> None:
        self._x = _user_item(train)
        self._sim = _cosine_item_item(self._x, neighbours)

    def scores(self, users: NDArray[np.int64]) -> FloatMatrix:
        out: FloatMatrix = np.asarray((self._x[users] @ self._sim).todense(), dtype=np.float32)
        return out


@dataclass(frozen=True)
class CairnParams:
    """The knobs tuned on the validation split."""

    half_life: float = math.inf  # in items, back from the most recent; inf = no recency weighting
    ease_lambda: float = 100.0
    neighbours: int = 200
    window: int = 3
    beta: float = 0.0  # popularity penalty on the kNN and next-item scores
    group_context: float = 0.0  # weight of the teammates' shares among EASE's inputs
    w_knn: float = 1.0
    w_ease: float = 0.0
    w_next: float = 0.0
    w_content: float = 0.0
    w_pop: float = 0.0
    w_team: float = 0.0

    def as_dict(self) -> dict[str, float | str]:
        return {k: "inf" if math.isinf(v) else v for k, v in vars(self).items()}


def _ease(x: sp.csr_matrix, lam: float) -> FloatMatrix:
    """EASE weights: B = I - P diag(1/diag(P)), P = (X'X + lam I)^-1, zero diagonal."""
    gram = np.asarray((x.T @ x).todense(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(lam)
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return np.asarray(weights, dtype=np.float32)


class CairnRecommender:
    """The blend described in the module docstring. `item_vectors` rows align with item indexes
    (zero rows for items without text). The EASE score is used only up to `max_ease_items` items,
    and the teammates' shares join its inputs only up to `max_context_items` items (they double
    them): its gram matrix is dense and refitted for every setting the tuning tries."""

    name = "cairn"

    def __init__(
        self,
        train: Interactions,
        params: CairnParams,
        item_vectors: FloatMatrix | None = None,
        *,
        max_ease_items: int = 6000,
        max_context_items: int = 1500,
    ) -> None:
        self.params = params
        self._train = train
        self._pop = _popularity(train)
        self._binary = _user_item(train)
        self._sim = _cosine_item_item(self._binary, params.neighbours)
        self._next = _transitions(train, params.window)
        self._vectors = item_vectors
        self._context = _group_context(train, self._binary)
        self.has_ease = train.n_items <= max_ease_items
        self.has_groups = self._context is not None
        self.has_group_context = self.has_ease and self.has_groups
        self.has_group_context &= train.n_items <= max_context_items
        self._ease: FloatMatrix | None = None
        self._ease_fit = (math.nan, math.nan)
        self._weights = _recency_weights(train, params.half_life)
        self._half_life = params.half_life

    def configure(self, params: CairnParams) -> None:
        """Refit what depends on the structural knobs (recency half-life, EASE lambda, the group
        context's weight)."""
        if params.half_life != self._half_life:
            self._weights = _recency_weights(self._train, params.half_life)
            self._half_life = params.half_life
        fit = (params.ease_lambda, self._ease_context(params))
        if self.has_ease and params.w_ease and fit != self._ease_fit:
            inputs = self._binary
            if fit[1] and self._context is not None:
                inputs = sp.hstack([inputs, np.float32(fit[1]) * self._context]).tocsr()
            self._ease = _ease(inputs, params.ease_lambda)
            self._ease_fit = fit
        self.params = params

    def _ease_context(self, params: CairnParams) -> float:
        return params.group_context if self.has_group_context else 0.0

    def components(self, users: NDArray[np.int64]) -> dict[str, FloatMatrix]:
        """Each raw score of the blend for `users` (users x items), before scaling and weights."""
        w = self._weights[users]
        out = {
            "knn": np.asarray((w @ self._sim).todense(), dtype=np.float32),
            "next": np.asarray((w @ self._next).todense(), dtype=np.float32),
        }
        context = self._context[users] if self._context is not None else None
        if self._ease is not None and self.params.w_ease:
            inputs = w
            a = self._ease_fit[1]
            if a and context is not None:
                inputs = sp.hstack([w, np.float32(a) * context]).tocsr()
            n = self._train.n_items
            out["ease"] = np.maximum(np.asarray(inputs @ self._ease[:, :n], np.float32), 0.0)
        if self._vectors is not None:
            profiles = np.asarray(w @ self._vectors, dtype=np.float32)
            norms = np.linalg.norm(profiles, axis=1, keepdims=True)
            np.divide(profiles, norms, out=profiles, where=norms > 0)
            out["content"] = np.maximum(profiles @ self._vectors.T, 0.0).astype(np.float32)
        if context is not None:
            out["team"] = np.asarray(context.todense(), dtype=np.float32)
        pop = np.log1p(self._pop).astype(np.float32)
        out["pop"] = np.broadcast_to(pop, (len(users), len(pop))).copy()
        return out

    def blend(self, parts: Mapping[str, FloatMatrix], params: CairnParams) -> FloatMatrix:
        """The weighted sum of the components, each scaled to [0, 1] per user."""
        penalty = np.power(np.maximum(self._pop, 1.0), -params.beta).astype(np.float32)
        total = np.zeros_like(parts["pop"])
        for weight, name, penalised in (
            (params.w_knn, "knn", True),
            (params.w_ease, "ease", True),
            (params.w_next, "next", True),
            (params.w_content, "content", False),
            (params.w_pop, "pop", False),
            (params.w_team, "team", False),
        ):
            if weight and name in parts:
                part = parts[name] * penalty if penalised else parts[name]
                total += np.float32(weight) * _row_max_scale(part)
        return total

    def scores(self, users: NDArray[np.int64]) -> FloatMatrix:
        return self.blend(self.components(users), self.params)


# --------------------------------------------------------------------------------------------------
# Scoring.


@dataclass(frozen=True)
class ModelScores:
    recall: float
    ndcg: float
    coverage: float
    users: int

    def as_dict(self) -> dict[str, float]:
        return {
            "recall@10": round(self.recall, 4),
            "ndcg@10": round(self.ndcg, 4),
            "coverage": round(self.coverage, 4),
        }


def _top_k(scores: FloatMatrix, seen: sp.csr_matrix, k: int) -> NDArray[np.int64]:
    """The k best unseen items per row, best first."""
    masked = np.array(scores, dtype=np.float32, copy=True)
    rows, cols = seen.nonzero()
    masked[rows, cols] = -np.inf
    kk = min(k, masked.shape[1])
    top = np.argpartition(-masked, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(masked, top, axis=1), axis=1, kind="stable")
    ranked = np.take_along_axis(top, order, axis=1)
    ranked_scores = np.take_along_axis(masked, ranked, axis=1)
    return np.where(np.isfinite(ranked_scores), ranked, -1)


def _discounts(k: int) -> NDArray[np.float64]:
    return np.asarray(1.0 / np.log2(np.arange(2, k + 2)), dtype=np.float64)


def _metrics(
    ranked: NDArray[np.int64], truth: Sequence[NDArray[np.int64]], k: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-user recall@k and nDCG@k."""
    disc = _discounts(k)
    ideal = np.cumsum(disc)
    recall = np.zeros(len(truth))
    ndcg = np.zeros(len(truth))
    for row, items in enumerate(truth):
        hits = np.isin(ranked[row, :k], items)
        n = min(len(items), k)
        recall[row] = hits.sum() / n
        ndcg[row] = float((hits * disc[: len(hits)]).sum()) / ideal[n - 1]
    return recall, ndcg


def score_model(
    score_fn: Callable[[NDArray[np.int64]], FloatMatrix],
    split: Split,
    n_items: int,
    k: int = K,
) -> ModelScores:
    seen = _user_item(split.train)
    recalls: list[NDArray[np.float64]] = []
    ndcgs: list[NDArray[np.float64]] = []
    shown = np.zeros(n_items, dtype=bool)
    for start in range(0, len(split.test_users), _BATCH):
        users = split.test_users[start : start + _BATCH]
        ranked = _top_k(score_fn(users), seen[users], k)
        shown[ranked[ranked >= 0]] = True
        r, n = _metrics(ranked, split.test_items[start : start + _BATCH], k)
        recalls.append(r)
        ndcgs.append(n)
    if not recalls:
        return ModelScores(0.0, 0.0, 0.0, 0)
    return ModelScores(
        float(np.concatenate(recalls).mean()),
        float(np.concatenate(ndcgs).mean()),
        float(shown.sum() / max(n_items, 1)),
        len(split.test_users),
    )


# --------------------------------------------------------------------------------------------------
# Tuning Cairn on validation data.

_GRID: Final[Mapping[str, tuple[float, ...]]] = {
    "half_life": (1.0, 3.0, 8.0, math.inf),
    "w_ease": (0.0, 0.5, 1.0, 2.0),
    "ease_lambda": (10.0, 50.0, 200.0, 1000.0),
    "w_knn": (0.0, 0.5, 1.0),
    "beta": (0.0, 0.25, 0.5),
    "w_next": (0.0, 0.25, 0.5, 1.0, 2.0),
    "w_content": (0.0, 0.1, 0.25, 0.5, 1.0),
    "w_pop": (0.0, 0.1, 0.25, 0.5),
    "group_context": (0.0, 0.25, 0.5, 1.0),
    "w_team": (0.0, 0.1, 0.25, 0.5),
}
_STRUCTURAL: Final = frozenset({"half_life", "ease_lambda", "w_ease", "group_context"})
_EASE_KNOBS: Final = frozenset({"w_ease", "ease_lambda", "group_context"})


@dataclass
class Tuning:
    params: CairnParams
    validation_ndcg: float
    validation_knn_ndcg: float
    tried: int
    seconds: float


def tune_cairn(
    train: Interactions,
    item_vectors: FloatMatrix | None,
    *,
    max_users: int = 2000,
    rounds: int = 2,
    seed: int = 0,
    progress: Progress | None = None,
) -> Tuning:
    """Pick Cairn's parameters by nDCG@10 on a validation split carved out of `train`.

    Coordinate ascent over `_GRID` from two starts, plain kNN and every score blended in: each
    round tries every value of one parameter with the others held and keeps the best; the better
    of the two ends wins.
    """
    t0 = time.perf_counter()
    inner = temporal_split(train)
    rng = np.random.default_rng(seed)
    chosen = np.arange(len(inner.test_users))
    if len(chosen) > max_users:
        chosen = np.sort(rng.choice(chosen, size=max_users, replace=False))
    valid = Split(
        inner.train, inner.test_users[chosen], [inner.test_items[i] for i in chosen.tolist()]
    )
    users = valid.test_users
    seen = _user_item(valid.train)[users]
    knn_ndcg = _ndcg_of(ItemKNN(valid.train).scores(users), seen, valid)
    model = CairnRecommender(valid.train, CairnParams(), item_vectors)
    names = [
        n
        for n in _GRID
        if (item_vectors is not None or n != "w_content")
        and (model.has_ease or n not in _EASE_KNOBS)
        and (model.has_groups or n != "w_team")
        and (model.has_group_context or n != "group_context")
    ]
    starts = [
        CairnParams(),  # plain kNN
        CairnParams(  # everything on
            half_life=8.0,
            w_ease=1.0 if model.has_ease else 0.0,
            w_next=1.0,
            w_content=0.25 if item_vectors is not None else 0.0,
            w_pop=0.1,
            group_context=0.5 if model.has_group_context else 0.0,
            w_team=0.1 if model.has_groups else 0.0,
        ),
    ]
    best, best_ndcg, tried = starts[0], -1.0, 0
    for start in starts:
        found, ndcg, n = _ascend(model, start, names, rounds, users, seen, valid, progress)
        tried += n
        if ndcg > best_ndcg:
            best, best_ndcg = found, ndcg
    return Tuning(best, best_ndcg, knn_ndcg, tried, time.perf_counter() - t0)


def _ascend(
    model: CairnRecommender,
    start: CairnParams,
    names: Sequence[str],
    rounds: int,
    users: NDArray[np.int64],
    seen: sp.csr_matrix,
    valid: Split,
    progress: Progress | None,
) -> tuple[CairnParams, float, int]:
    """Coordinate ascent from `start`: (best parameters, their nDCG@10, settings tried)."""
    best = start
    model.configure(best)
    parts = model.components(users)
    best_ndcg = _ndcg_of(model.blend(parts, best), seen, valid)
    tried = 1
    for _ in range(rounds):
        improved = False
        for name in names:
            if name in ("ease_lambda", "group_context") and not best.w_ease:
                continue
            for value in _GRID[name]:
                if value == getattr(best, name):
                    continue
                params = replace(best, **cast(dict[str, Any], {name: value}))
                if name in _STRUCTURAL:
                    model.configure(params)
                    candidate = model.components(users)
                else:
                    candidate = parts
                ndcg = _ndcg_of(model.blend(candidate, params), seen, valid)
                tried += 1
                if ndcg > best_ndcg + 1e-6:
                    best, best_ndcg, improved, parts = params, ndcg, True, candidate
            model.configure(best)
        if progress is not None:
            progress(f"  tuning: validation nDCG@10 {best_ndcg:.4f} after {tried} settings")
        if not improved:
            break
    return best, best_ndcg, tried


def _ndcg_of(scores: FloatMatrix, seen: sp.csr_matrix, split: Split) -> float:
    ranked = _top_k(scores, seen, K)
    _, ndcg = _metrics(ranked, split.test_items, K)
    return float(ndcg.mean()) if len(ndcg) else 0.0


# --------------------------------------------------------------------------------------------------
# The whole evaluation.


@dataclass
class EvalReport:
    models: dict[str, ModelScores]
    users: int
    items: int
    interactions: int
    test_users: int
    held_out: int
    with_content: bool
    tuning: Tuning
    seconds: float
    notes: list[str] = field(default_factory=list)
    groups: int = 0  # groups (accounts) the users belong to; 0 when not given

    def ratio(self, model: str, baseline: str, metric: str = "ndcg") -> float:
        a = getattr(self.models[model], metric)
        b = getattr(self.models[baseline], metric)
        return a / b if b > 0 else math.inf

    def verdict(self) -> list[str]:
        """Plain sentences: whether Cairn meets its goal, and every baseline it loses to."""
        cairn = self.models["cairn"]
        lines: list[str] = []
        vs_pop = self.ratio("cairn", "popularity")
        knn = self.models["item_knn"]
        goal_pop = vs_pop >= 1.5
        goal_knn = cairn.ndcg >= knn.ndcg
        if goal_pop and goal_knn:
            lines.append(
                f"Goal met: Cairn's nDCG@10 is {vs_pop:.2f}x popularity (goal 1.5x) and "
                f"{self.ratio('cairn', 'item_knn'):.2f}x item-kNN (goal: not below)."
            )
        else:
            lines.append("Goal NOT met.")
        for name, other in self.models.items():
            if name == "cairn":
                continue
            for metric, label in (("ndcg", "nDCG@10"), ("recall", "recall@10")):
                mine, theirs = getattr(cairn, metric), getattr(other, metric)
                if mine < theirs:
                    lines.append(f"Cairn LOSES to {name} on {label}: {mine:.4f} vs {theirs:.4f}.")
        if not goal_pop:
            lines.append(f"Cairn's nDCG@10 is only {vs_pop:.2f}x popularity (goal 1.5x).")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "models": {name: s.as_dict() for name, s in self.models.items()},
            "ratios_to_popularity": {
                name: {
                    "ndcg@10": _finite(self.ratio(name, "popularity")),
                    "recall@10": _finite(self.ratio(name, "popularity", "recall")),
                }
                for name in self.models
            },
            "data": {
                "users": self.users,
                "items": self.items,
                "interactions": self.interactions,
                "test_users": self.test_users,
                "held_out_items": self.held_out,
                "item_texts": self.with_content,
                "groups": self.groups,
            },
            "split": "per user, last 20% of distinct items by first use held out",
            "cairn": {
                "params": self.tuning.params.as_dict(),
                "validation_ndcg@10": round(self.tuning.validation_ndcg, 4),
                "validation_item_knn_ndcg@10": round(self.tuning.validation_knn_ndcg, 4),
                "settings_tried": self.tuning.tried,
            },
            "verdict": self.verdict(),
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }


def _finite(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None


def evaluate(
    data: Interactions,
    item_vectors: FloatMatrix | None = None,
    *,
    progress: Progress | None = None,
    tune_users: int = 2000,
) -> EvalReport:
    """Split, fit the three models on the training rows and score them on the held-out items.

    `item_vectors` (n_items x dim, rows aligned with `data.item_ids`, zero for items without text)
    turns on Cairn's content score; users' groups (`data.groups`) turn on its teammates' scores.
    """
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    split = temporal_split(data)
    if not len(split.test_users):
        raise ValueError("no user has two or more distinct items: nothing to hold out")
    say(
        f"{len(data):,} interactions, {data.n_users:,} users, {data.n_items:,} items; "
        f"{len(split.test_users):,} test users, {split.held_out:,} held-out items"
    )
    notes: list[str] = []
    if data.groups is not None and data.n_groups:
        sizes = np.bincount(data.groups[data.groups >= 0], minlength=data.n_groups)
        if not np.any(sizes >= 2):
            notes.append("no group has two users: Cairn runs without its teammates' scores")
    if item_vectors is not None and not np.any(item_vectors):
        item_vectors = None
    if item_vectors is None:
        notes.append("no item texts: Cairn runs without its content score")
    say("tuning Cairn on a validation split of the training data")
    tuning = tune_cairn(split.train, item_vectors, max_users=tune_users, progress=progress)
    models: dict[str, ModelScores] = {}
    for name, build in (
        ("popularity", lambda: Popularity(split.train)),
        ("item_knn", lambda: ItemKNN(split.train)),
        ("cairn", lambda: _fitted_cairn(split.train, tuning.params, item_vectors)),
    ):
        model: Popularity | ItemKNN | CairnRecommender = build()
        models[name] = score_model(model.scores, split, data.n_items)
        say(f"  {name}: nDCG@10 {models[name].ndcg:.4f}")
    return EvalReport(
        models=models,
        users=data.n_users,
        items=data.n_items,
        interactions=len(data),
        test_users=len(split.test_users),
        held_out=split.held_out,
        with_content=item_vectors is not None,
        tuning=tuning,
        seconds=time.perf_counter() - t0,
        notes=notes,
        groups=data.n_groups,
    )


def _fitted_cairn(
    train: Interactions, params: CairnParams, item_vectors: FloatMatrix | None
) -> CairnRecommender:
    model = CairnRecommender(train, params, item_vectors)
    model.configure(params)
    return model


def format_report(report: EvalReport, title: str = "") -> str:
    """The side-by-side table, the tuned parameters and the verdict, as plain text."""
    lines: list[str] = []
    if title:
        lines.append(title)
    in_groups = f" in {report.groups:,} groups" if report.groups else ""
    lines.append(
        f"{report.interactions:,} interactions, {report.users:,} users{in_groups}, "
        f"{report.items:,} items; {report.test_users:,} test users, {report.held_out:,} held-out "
        f"items (last 20% of each user's distinct items)"
    )
    header = f"{'model':<12} {'recall@10':>10} {'nDCG@10':>9} {'coverage':>9} {'nDCG/pop':>9}"
    lines += [header, "-" * len(header)]
    for name, s in report.models.items():
        ratio = report.ratio(name, "popularity")
        lines.append(
            f"{name:<12} {s.recall:>10.4f} {s.ndcg:>9.4f} {s.coverage:>9.3f} {ratio:>8.2f}x"
        )
    p = report.tuning.params
    lines.append(
        f"cairn, tuned on validation (nDCG@10 {report.tuning.validation_ndcg:.4f} vs item-kNN "
        f"{report.tuning.validation_knn_ndcg:.4f}, {report.tuning.tried} settings): "
        f"half-life {p.half_life} items, beta {p.beta}, EASE lambda {p.ease_lambda}; weights "
        f"knn {p.w_knn} EASE {p.w_ease} next {p.w_next} content {p.w_content} popularity {p.w_pop}"
        + (
            f" teammates {p.w_team}; teammates' share among EASE's inputs {p.group_context}"
            if report.groups
            else ""
        )
    )
    lines += report.notes
    lines += report.verdict()
    lines.append(f"({report.seconds:.1f} s)")
    return "\n".join(lines)
