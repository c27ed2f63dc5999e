"""Offline evaluation: reading files, the temporal split, the metrics, the models, `cairn recs`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from app.cli import recs
from app.demo.interactions import demo_interactions
from recommender.embedder import normalize_rows
from recommender.evaluate import (
    CairnParams,
    CairnRecommender,
    EvalReport,
    Interactions,
    ItemKNN,
    ModelScores,
    Popularity,
    Split,
    Tuning,
    _group_context,
    _metrics,
    _user_item,
    evaluate,
    format_report,
    parse_timestamp,
    read_interactions,
    read_item_texts,
    score_model,
    temporal_split,
)
from recommender.synthetic import generate_interactions, write_csv

DAY = 86_400.0


def _data(
    rows: list[tuple[str, str, float]],
    items: tuple[str, ...] = (),
    groups: dict[str, str] | None = None,
) -> Interactions:
    return Interactions.from_records(rows, items, groups)


# --- reading --------------------------------------------------------------------------------------


def test_timestamps_are_iso_8601_or_epoch_seconds() -> None:
    assert parse_timestamp("1700000000") == 1_700_000_000.0
    assert parse_timestamp(" 1700000000.5 ") == 1_700_000_000.5
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    assert parse_timestamp("2023-11-14T22:13:20") == 1_700_000_000.0  # naive means UTC
    assert parse_timestamp("2023-11-14") == 1_699_920_000.0
    with pytest.raises(ValueError, match="yesterday"):
        parse_timestamp("yesterday")


def test_reading_interaction_and_item_files(tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(
        "user_id,item_id,timestamp,extra\n"
        "u1,a,2026-01-01T10:00:00Z,x\n"
        "u1,b,1767261600,y\n"
        "u2,a,2026-01-02T10:00:00.250+00:00,z\n"
    )
    items = tmp_path / "items.csv"
    items.write_text('item_id,text\na,"Alpha, the first"\nc,Gamma\n')
    texts = read_item_texts(items)
    assert texts == {"a": "Alpha, the first", "c": "Gamma"}
    data = read_interactions(path, list(texts))
    assert data.user_ids == ["u1", "u2"]
    assert data.item_ids == ["a", "c", "b"]  # items from the text file first, then the rest
    assert data.items.tolist() == [0, 2, 0]
    assert data.times[2] == pytest.approx(parse_timestamp("2026-01-02T10:00:00.25Z"))


def test_reading_reports_bad_files_by_line(tmp_path: Path) -> None:
    bad_header = tmp_path / "a.csv"
    bad_header.write_text("user,item,timestamp\nu,i,1\n")
    with pytest.raises(ValueError, match="lacks item_id, user_id"):
        read_interactions(bad_header)
    bad_time = tmp_path / "b.csv"
    bad_time.write_text("user_id,item_id,timestamp\nu,i,1\nu,j,soon\n")
    with pytest.raises(ValueError, match=r"b\.csv:3: timestamp 'soon'"):
        read_interactions(bad_time)
    empty_item = tmp_path / "c.csv"
    empty_item.write_text("user_id,item_id,timestamp\nu,,1\n")
    with pytest.raises(ValueError, match=r"c\.csv:2: empty"):
        read_interactions(empty_item)


def test_reading_an_optional_group_column(tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text(
        "user_id,item_id,timestamp,group_id\n"
        "u1,a,1,acme\n"
        "u2,a,2,globex\n"
        "u1,b,3,\n"  # an empty group says nothing
        "u3,b,4,acme\n"
        "u4,c,5,\n"  # no group at all
    )
    data = read_interactions(path)
    assert data.group_ids == ["acme", "globex"]
    assert data.groups is not None
    assert data.groups.tolist() == [0, 1, 0, -1]
    assert data.n_groups == 2
    split = temporal_split(data)
    assert split.train.groups is not None
    assert split.train.groups.tolist() == data.groups.tolist()  # the split keeps the groups
    without = tmp_path / "plain.csv"
    without.write_text("user_id,item_id,timestamp\nu1,a,1\n")
    plain = read_interactions(without)
    assert plain.groups is None
    assert plain.n_groups == 0


def test_a_user_in_two_groups_is_reported_by_line(tmp_path: Path) -> None:
    path = tmp_path / "interactions.csv"
    path.write_text("user_id,item_id,timestamp,group_id\nu1,a,1,acme\nu1,b,2,acme\nu1,c,3,x\n")
    with pytest.raises(ValueError, match=r"csv:4: user 'u1' is in group 'x' here and in 'acme'"):
        read_interactions(path)


# --- the split ------------------------------------------------------------------------------------


def test_split_holds_out_each_users_last_fifth_of_distinct_items() -> None:
    rows = [("u1", f"i{n}", n * DAY) for n in range(10)]
    rows += [("u1", "i0", 20 * DAY), ("u1", "i9", 0.5 * DAY)]  # repeats count by first use
    rows += [("u2", "i0", 5.0), ("u2", "i1", 1.0)]  # two items: one held out
    rows += [("u3", "i4", 1.0), ("u3", "i4", 2.0)]  # one distinct item: trains only
    data = _data(rows)
    split = temporal_split(data)
    held = {
        data.user_ids[u]: sorted(data.item_ids[i] for i in items)
        for u, items in zip(split.test_users.tolist(), split.test_items, strict=True)
    }
    # u1's distinct items by first use: i0, i9 (day 0.5), i1, ..., i8: the last two are held out.
    assert held == {"u1": ["i7", "i8"], "u2": ["i0"]}
    train_pairs = {
        (data.user_ids[u], data.item_ids[i])
        for u, i in zip(split.train.users.tolist(), split.train.items.tolist(), strict=True)
    }
    assert ("u1", "i7") not in train_pairs
    assert ("u1", "i0") in train_pairs
    assert ("u3", "i4") in train_pairs
    assert len(split.train) == len(data) - 3
    assert split.held_out == 3


# --- metrics and models ---------------------------------------------------------------------------


def test_recall_and_ndcg_at_10_by_hand() -> None:
    ranked = np.array([[5, 1, 7, 2, 3, 4, 6, 8, 9, 0]])
    recall, ndcg = _metrics(ranked, [np.array([1, 2, 42])], 10)
    assert recall[0] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg[0] == pytest.approx(dcg / ideal)
    recall, ndcg = _metrics(ranked[:, :3], [np.arange(20)], 3)  # more held out than k
    assert recall[0] == pytest.approx(1.0)
    assert ndcg[0] == pytest.approx(1.0)


def test_models_never_recommend_what_the_user_already_has() -> None:
    rows = [(f"u{n}", "popular", 1.0) for n in range(10)]
    rows += [("u0", "a", 2.0), ("u0", "b", 3.0), ("u1", "a", 2.0), ("u1", "b", 3.0)]
    data = _data(rows)
    split = Split(data, np.array([0]), [np.array([data.item_ids.index("b")])])
    scores = score_model(Popularity(data).scores, split, data.n_items, k=3)
    assert scores.recall == 0.0  # u0 already has everything popular
    knn = ItemKNN(data)
    assert knn.scores(np.array([2]))[0, data.item_ids.index("a")] > 0


@pytest.fixture(scope="module")
def clustered() -> Interactions:
    synthetic = generate_interactions(12_000, users=800, items=400, seed=5)
    return Interactions.from_records(synthetic.rows)


def test_cairn_beats_popularity_and_holds_up_against_item_knn(clustered: Interactions) -> None:
    report = evaluate(clustered)
    scores = report.models
    assert set(scores) == {"popularity", "item_knn", "cairn"}
    assert scores["cairn"].ndcg >= 1.5 * scores["popularity"].ndcg
    assert scores["cairn"].ndcg >= scores["item_knn"].ndcg
    assert scores["cairn"].coverage > scores["popularity"].coverage
    assert report.tuning.validation_ndcg >= report.tuning.validation_knn_ndcg
    assert report.verdict()[0].startswith("Goal met")
    assert report.notes == ["no item texts: Cairn runs without its content score"]


def test_cairn_uses_item_vectors_for_items_without_history(clustered: Interactions) -> None:
    # Vectors that put every item next to the items its users also use: the content score alone
    # (no collaborative signal) must then rank well above popularity.
    split = temporal_split(clustered)
    model = CairnRecommender(
        split.train, CairnParams(w_knn=0.0, w_content=1.0), _cooccurrence_vectors(clustered)
    )
    content = score_model(model.scores, split, clustered.n_items)
    popularity = score_model(Popularity(split.train).scores, split, clustered.n_items)
    assert content.ndcg > 1.5 * popularity.ndcg


def _cooccurrence_vectors(data: Interactions) -> NDArray[np.float32]:
    x = np.zeros((data.n_users, data.n_items), dtype=np.float32)
    x[data.users, data.items] = 1.0
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    vectors: NDArray[np.float32] = (vt[:16].T * s[:16]).astype(np.float32)
    return normalize_rows(vectors)


def test_group_context_is_the_share_of_teammates_using_each_item() -> None:
    rows = [("a1", "x", 1.0), ("a2", "x", 2.0), ("a2", "y", 3.0), ("a3", "y", 4.0)]
    rows += [("b1", "z", 5.0), ("solo", "x", 6.0)]
    groups = {"a1": "acme", "a2": "acme", "a3": "acme", "b1": "bolt", "solo": "lone"}
    data = _data(rows, groups=groups)
    context = _group_context(data, _user_item(data))
    assert context is not None
    dense = context.toarray()
    col = {item: n for n, item in enumerate(data.item_ids)}
    user = {u: n for n, u in enumerate(data.user_ids)}
    # a1's teammates are a2 (x, y) and a3 (y): x by half of them, y by all; never a1's own row.
    assert dense[user["a1"], col["x"]] == pytest.approx(0.5)
    assert dense[user["a1"], col["y"]] == pytest.approx(1.0)
    assert dense[user["a2"], col["x"]] == pytest.approx(0.5)
    assert dense[user["a3"], col["x"]] == pytest.approx(1.0)
    assert not dense[user["b1"]].any()  # alone in the group
    assert not dense[user["solo"]].any()
    assert _group_context(_data(rows), _user_item(_data(rows))) is None  # no groups
    lonely = {"a1": "1", "a2": "2", "a3": "3", "b1": "4", "solo": "5"}
    assert _group_context(_data(rows, groups=lonely), _user_item(_data(rows))) is None


def _teams(
    groups: int = 60, size: int = 8, items: int = 120, kit: int = 20, seed: int = 1
) -> tuple[list[tuple[str, str, float]], dict[str, str]]:
    """Each group works with its own random kit of items; each member uses five of them. Items
    belong to many kits, so a user's own few items say little about which kit is theirs, and
    their teammates' say a lot."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, float]] = []
    group_of: dict[str, str] = {}
    for g in range(groups):
        chosen = rng.choice(items, size=kit, replace=False)
        for m in range(size):
            user = f"g{g}u{m}"
            group_of[user] = f"g{g}"
            for n, item in enumerate(rng.choice(chosen, size=5, replace=False).tolist()):
                rows.append((user, f"i{item}", float(n)))
    return rows, group_of


def test_cairn_learns_from_teammates_when_groups_are_given() -> None:
    rows, group_of = _teams()
    alone = evaluate(_data(rows))
    together = evaluate(_data(rows, groups=group_of))
    assert alone.groups == 0
    assert together.groups == 60
    # The baselines never look at groups: the same scores either way.
    for name in ("popularity", "item_knn"):
        assert together.models[name] == alone.models[name]
    assert together.models["cairn"].ndcg > 2.0 * alone.models["cairn"].ndcg
    assert together.models["cairn"].ndcg > 2.0 * together.models["item_knn"].ndcg
    params = together.tuning.params
    assert params.w_team > 0 or (params.w_ease > 0 and params.group_context > 0)
    assert "in 60 groups" in format_report(together)
    assert together.as_json()["data"]["groups"] == 60
    assert alone.as_json()["data"]["groups"] == 0
    assert "teammates" not in format_report(alone)


def test_groups_of_one_are_noted_and_change_nothing() -> None:
    rows, _ = _teams(groups=20)
    lonely = {u: u for u, _, _ in rows}
    report = evaluate(_data(rows, groups=lonely))
    assert "no group has two users: Cairn runs without its teammates' scores" in report.notes
    plain = evaluate(_data(rows))
    assert report.models == plain.models


def test_the_verdict_says_plainly_when_cairn_loses() -> None:
    scores = {
        "popularity": ModelScores(0.30, 0.20, 0.01, 100),
        "item_knn": ModelScores(0.50, 0.40, 0.5, 100),
        "cairn": ModelScores(0.45, 0.35, 0.6, 100),
    }
    report = EvalReport(
        models=scores,
        users=100,
        items=50,
        interactions=1000,
        test_users=100,
        held_out=120,
        with_content=False,
        tuning=Tuning(CairnParams(), 0.3, 0.31, 10, 0.1),
        seconds=1.0,
    )
    verdict = report.verdict()
    assert verdict[0] == "Goal NOT met."
    assert "Cairn LOSES to item_knn on nDCG@10: 0.3500 vs 0.4000." in verdict
    assert "Cairn LOSES to item_knn on recall@10: 0.4500 vs 0.5000." in verdict
    assert not any("popularity on" in line for line in verdict)
    text = format_report(report)
    assert "Cairn LOSES to item_knn" in text
    assert "1.75x" in text  # cairn's nDCG over popularity's
    as_json = report.as_json()
    assert as_json["models"]["cairn"] == {"recall@10": 0.45, "ndcg@10": 0.35, "coverage": 0.6}
    assert as_json["verdict"] == verdict


# --- demo data and the command --------------------------------------------------------------------


def test_demo_events_become_interactions_with_catalog_items() -> None:
    data = demo_interactions(tenants=12, users=80, events=6000)
    from app.demo.catalog import demo_catalog

    catalog = demo_catalog()
    assert len(data) > 1000
    assert set(data.item_ids) <= set(catalog)
    used = {catalog[data.item_ids[i]].kind for i in set(data.items.tolist())}
    assert used == {"template", "integration", "feature", "article"}
    # Each user is in the group of their tenant.
    from app.demo.population import PopulationSpec, generate

    population = generate(PopulationSpec(tenants=12, users=80, events=6000))
    tenant_of = {u.user_id: u.tenant_id for u in population.users}
    assert data.groups is not None
    assert all(
        data.group_ids[data.groups[n]] == tenant_of[user] for n, user in enumerate(data.user_ids)
    )
    assert 1 < data.n_groups <= 12


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cairn")
    recs.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_recs_eval_prints_json_for_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic = generate_interactions(6000, users=400, items=200, seed=9)
    path = tmp_path / "interactions.csv"
    write_csv(synthetic, path)
    assert _run(["recs", "eval", "--interactions", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["models"]) == {"popularity", "item_knn", "cairn"}
    for scores in out["models"].values():
        assert set(scores) == {"recall@10", "ndcg@10", "coverage"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert out["data"]["interactions"] == len(synthetic.rows)
    assert out["data"]["item_texts"] is False
    assert out["data"]["groups"] == 0
    assert out["verdict"]


def test_recs_eval_reads_a_group_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows, group_of = _teams(groups=30)
    path = tmp_path / "interactions.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("user_id,item_id,timestamp,group_id\n")
        fh.writelines(f"{u},{i},{int(t)},{group_of[u]}\n" for u, i, t in rows)
    assert _run(["recs", "eval", "--interactions", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"]["groups"] == 30
    assert out["cairn"]["params"]["w_team"] > 0 or out["cairn"]["params"]["group_context"] > 0
    assert _run(["recs", "eval", "--interactions", str(path)]) == 0
    assert "in 30 groups" in capsys.readouterr().out


def test_recs_eval_on_the_demo_population_embeds_the_catalog(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["recs", "eval", "--tenants", "12", "--users", "120", "--events", "12000"]
    assert _run(argv) == 0
    captured = capsys.readouterr()
    assert "Recommendations on the demo population" in captured.out
    for name in ("popularity", "item_knn", "cairn"):
        assert f"\n{name} " in captured.out
    assert "embedded 176 item texts" in captured.err
    assert " groups, 176 items" in captured.out  # each user in the group of their tenant
    assert "Goal" in captured.out


def test_recs_eval_reports_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["recs", "eval", "--interactions", str(tmp_path / "nope.csv")]) == 2
    assert "cairn recs eval:" in capsys.readouterr().err


def test_recs_synth_and_catalog_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, items = tmp_path / "i.csv", tmp_path / "t.csv"
    assert _run(["recs", "synth", "--out", str(out), "--items-out", str(items), "--rows", "800",
                 "--users", "50", "--items", "40"]) == 0  # fmt: skip
    assert len(read_interactions(out)) > 600
    assert len(read_item_texts(items)) == 40
    capsys.readouterr()
    assert _run(["recs", "catalog", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "item_id,text"
    assert len(lines) == 177
