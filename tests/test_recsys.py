"""The recommender library: metrics, data, model contract, training, artifacts, serving, CLI."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recsys.artifacts import (
    ArtifactCorruptError,
    ArtifactMissingError,
    TrainedModel,
    load_model,
    save_model,
    try_load_model,
)
from recsys.data import (
    ItemVocab,
    NextItemBatches,
    SequenceDataset,
    leave_one_out,
    load_amazon,
    pad_sequences,
    read_events_db,
    remap_dataset,
    sequences_from_events,
)
from recsys.evaluate import LeaveOneOutEvaluator
from recsys.metrics import hit_rate_at_k, ndcg_at_k, ranks_of_targets
from recsys.models import MODEL_CLASSES, ScoreBlend, build_model
from recsys.models.blend import repeat_rate
from recsys.serving import Recommender
from recsys.trainer import TrainConfig, build_and_train, tune_blend
from shopbot.cli.recsys import recsys_app as app
from tests.conftest import SHARED_DATA

N_ITEMS = 30
BEAUTY = SHARED_DATA / "interactions" / "amazon_beauty.txt"


def cyclic_dataset(users: int = 300, seed: int = 0) -> SequenceDataset:
    """Each user walks i, i+1, i+2, ... (mod N): the next item is always the last one + 1."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(users):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(5, 12))
        sequences.append([(start + step) % N_ITEMS + 1 for step in range(length)])
    vocab = ItemVocab([f"p{i}" for i in range(1, N_ITEMS + 1)])
    return SequenceDataset(sequences, vocab, [f"u{n}" for n in range(users)], "cyclic")


TINY_SASREC = {"hidden": 32, "blocks": 1, "heads": 1, "max_len": 12, "dropout": 0.1}


@pytest.fixture(scope="module")
def cyclic_split():
    return leave_one_out(cyclic_dataset())


@pytest.fixture(scope="module")
def trained_sasrec(cyclic_split):
    config = TrainConfig(epochs=40, batch_size=64, lr=5e-3, patience=40, progress=False,
                         threads=1)
    return build_and_train("sasrec", cyclic_split, TINY_SASREC, config)


# --------------------------------------------------------------------------- metrics


def test_metrics_on_hand_computed_ranks() -> None:
    ranks = [0, 1, 9, 10, 50]
    assert hit_rate_at_k(ranks, 10) == pytest.approx(3 / 5)
    assert hit_rate_at_k(ranks, 1) == pytest.approx(1 / 5)
    expected = (1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(11)) / 5
    assert ndcg_at_k(ranks, 10) == pytest.approx(expected)
    assert ndcg_at_k([], 10) == 0.0 and hit_rate_at_k([], 10) == 0.0


def test_ranks_count_ties_against_the_target() -> None:
    scores = torch.tensor([[float("-inf"), 3.0, 1.0, 2.0, 2.0],
                           [float("-inf"), 1.0, 1.0, 1.0, 1.0]])
    assert ranks_of_targets(scores, torch.tensor([3, 2])).tolist() == [2, 3]
    assert ranks_of_targets(scores, torch.tensor([1, 0]))[0] == 0


def test_history_masking_is_an_explicit_option() -> None:
    popular = build_model("popular", 4)
    popular.fit([[1, 1, 1, 2, 2, 3]])  # item 1 most popular, then 2, then 3
    plain = LeaveOneOutEvaluator([[1], [4]], [2, 2], ks=(1,))
    masked = LeaveOneOutEvaluator([[1], [4]], [2, 2], ks=(1,), exclude_history=True)
    assert plain(popular)["hr@1"] == 0.0
    assert masked(popular)["hr@1"] == 0.5  # user 1 can't be shown item 1 again; user 2 can


# --------------------------------------------------------------------------- data


def test_leave_one_out_holds_out_last_two() -> None:
    vocab = ItemVocab(["a", "b", "c", "d", "e"])
    split = leave_one_out(SequenceDataset([[1, 2, 3, 4, 5], [2, 3]], vocab, ["u1", "u2"]))
    assert split.train == [[1, 2, 3], [2, 3]]
    assert split.valid_histories == [[1, 2, 3]] and split.valid_targets == [4]
    assert split.test_histories == [[1, 2, 3, 4]] and split.test_targets == [5]


def test_padding_keeps_the_most_recent_items() -> None:
    left = pad_sequences([[1, 2, 3, 4], [7]], 3, side="left")
    right = pad_sequences([[1, 2, 3, 4], [7]], 3, side="right")
    assert left.tolist() == [[2, 3, 4], [0, 0, 7]]
    assert right.tolist() == [[2, 3, 4], [7, 0, 0]]


def test_next_item_batches_pair_each_item_with_its_successor() -> None:
    batches = NextItemBatches([[1, 2, 3], [4, 5], [6]], max_len=5, batch_size=8)
    (batch,) = list(batches.epoch(np.random.default_rng(0)))
    pairs = {(int(i), int(t)) for i, t in zip(batch.inputs.flatten(), batch.targets.flatten(),
                                               strict=True) if t}
    assert pairs == {(1, 2), (2, 3), (4, 5)} and batches.n_targets == 3


def test_amazon_loader_keeps_file_ids(tmp_path: Path) -> None:
    path = tmp_path / "amazon_tiny.txt"
    path.write_text("1 3 1 2\n2 2 10\n\n3\n")
    dataset = load_amazon(path)
    assert dataset.vocab.item_ids == ["1", "2", "3", "10"]
    assert dataset.sequences == [[3, 1, 2], [2, 4]] and dataset.user_ids == ["1", "2"]


def test_events_become_time_ordered_sequences(tmp_path: Path, caplog) -> None:
    rows = [
        ("u1", "B", "view", 20), ("u1", "A", "view", 10), ("u1", "A", "add_to_cart", 11),
        ("u1", "C", "purchase", 30), ("u2", "C", "view", 5), ("u2", "A", "search", 6),
        ("u2", None, "view", 7), ("u3", "A", "view", "not a time"),
    ]
    with caplog.at_level(logging.WARNING):
        dataset = sequences_from_events(rows)
    assert "2 malformed" in caplog.text
    decoded = {u: [dataset.vocab.to_id(i) for i in s]
               for u, s in zip(dataset.user_ids, dataset.sequences, strict=True)}
    assert decoded == {"u1": ["A", "B", "C"], "u2": ["C", "A"]}
    only_views = sequences_from_events(rows, event_types={"view"})
    assert [only_views.vocab.to_id(i) for i in only_views.sequences[0]] == ["A", "B"]

    db = tmp_path / "events.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE events (user_id, item_id, event_type, timestamp)")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows[:4])
    from_db = sequences_from_events(read_events_db(db))
    assert [from_db.vocab.to_id(i) for i in from_db.sequences[0]] == ["A", "B", "C"]
    with pytest.raises(ValueError):
        list(read_events_db(db, table="events; DROP TABLE events"))


def test_remap_to_a_model_vocabulary_marks_unknown_items() -> None:
    dataset = SequenceDataset([[1, 2, 3]], ItemVocab(["a", "b", "z"]), ["u"])
    remapped = remap_dataset(dataset, ItemVocab(["b", "a"]))
    assert remapped.sequences == [[2, 1, 0]]
    split = leave_one_out(remapped)
    assert split.test_histories == [[2, 1]] and split.test_targets == [0]


# --------------------------------------------------------------------------- models


CONTRACT_CONFIGS = {
    "sasrec": TINY_SASREC,
    "blend": {"parts": [{"name": "popular"}, {"name": "itemknn"}], "weights": [0.3, 0.7]},
}


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_every_model_honours_the_contract(name: str, cyclic_split) -> None:
    model = build_model(name, N_ITEMS, **CONTRACT_CONFIGS.get(name, {}))
    model.fit(cyclic_split.train)
    model.eval()
    left = pad_sequences([[1, 2, 3], [5], [4, 9, 9, 2]], 6, side="left")
    right = pad_sequences([[1, 2, 3], [5], [4, 9, 9, 2]], 6, side="right")
    with torch.no_grad():
        scores = model.full_sort_predict(left)
        assert scores.shape == (3, N_ITEMS + 1)
        assert torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
        assert torch.allclose(scores, model.full_sort_predict(right), atol=1e-5)


def test_sasrec_learns_the_next_item_and_beats_popularity(cyclic_split, trained_sasrec) -> None:
    model, result = trained_sasrec
    test = LeaveOneOutEvaluator(cyclic_split.test_histories, cyclic_split.test_targets,
                                max_len=12)
    popular, _ = build_and_train("popular", cyclic_split,
                                 train_config=TrainConfig(progress=False, threads=1))
    sasrec_metrics, popular_metrics = test(model), test(popular)
    assert result.best_epoch >= 1 and result.best_valid["ndcg@10"] > 0.8
    assert sasrec_metrics["hr@10"] > 0.95
    assert sasrec_metrics["ndcg@10"] > popular_metrics["ndcg@10"] + 0.5


def test_itemknn_finds_the_successor(cyclic_split) -> None:
    model, result = build_and_train("itemknn", cyclic_split,
                                    train_config=TrainConfig(progress=False, threads=1))
    history = pad_sequences([[4, 5, 6]], 5)
    assert int(model.full_sort_predict(history)[0].argmax()) == 7
    assert result.best_valid["hr@10"] > 0.95


def test_blend_mixes_trained_parts_and_survives_a_roundtrip(cyclic_split, trained_sasrec,
                                                          tmp_path: Path) -> None:
    sasrec, _ = trained_sasrec
    popular, _ = build_and_train("popular", cyclic_split,
                                 train_config=TrainConfig(progress=False, threads=1))
    (weight, floor), by_setting = tune_blend([sasrec, popular], cyclic_split.valid_histories,
                                             cyclic_split.valid_targets, max_len=12)
    assert weight <= 2.0 and by_setting["w=0.0 floor=0.0"] > by_setting["w=16.0 floor=0.0"]
    blend = ScoreBlend.from_models([sasrec, popular], [1.0, 2.0])
    history = pad_sequences([[3, 4, 5]], 12)
    scores = blend.full_sort_predict(history)
    assert int(scores[0].argmax()) == 6 and torch.isinf(scores[0, 0])
    with torch.no_grad():
        alone = torch.log_softmax(sasrec.eval().full_sort_predict(history), dim=1)
    lift = scores[0, 1:] - alone[0, 1:]
    assert torch.allclose(lift.max(), torch.tensor(2.0)) and lift.min() >= 0
    loaded = load_model(save_model(blend, cyclic_dataset().vocab, tmp_path / "blend.pt"))
    assert torch.allclose(loaded.model.full_sort_predict(history), scores)
    picks = Recommender(loaded.vocab.item_ids, loaded).recommend(["p3", "p4", "p5"], k=2)
    assert picks[0].item_id == "p6" and picks[0].source == "model"


def test_blend_learns_how_often_shoppers_repeat_an_item() -> None:
    """Where nobody re-buys, history items sink below everything else; where they do, not."""
    assert repeat_rate([[1, 2, 3], [4, 5]]) == pytest.approx(1 / 5)  # 0 of 3, add-one
    assert repeat_rate([[1, 2, 1, 2]]) == pytest.approx(3 / 5)  # 2 of 3
    config = {"parts": [{"name": "popular"}], "weights": [1.0]}
    once = build_model("blend", 6, **config)
    once.fit([[1, 2, 3, 4]] * 50 + [[3, 4]] * 20 + [[4, 5]] * 10 + [[6, 5]])  # no repeats
    again = build_model("blend", 6, **config)
    again.fit([[1, 2, 1, 2, 3, 4, 3, 4]] * 50 + [[5, 6]])
    history = pad_sequences([[1, 2]], 4)
    with torch.no_grad():
        fresh, repeat = once.full_sort_predict(history)[0], again.full_sort_predict(history)[0]
    assert set(torch.argsort(fresh, descending=True)[:4].tolist()) == {3, 4, 5, 6}
    assert fresh[4] > fresh[3] > fresh[5] > fresh[6] and fresh[1] == fresh[2]  # order kept
    assert torch.logsumexp(fresh[1:3], 0).exp() == pytest.approx(once.config["repeat_rate"])
    assert set(torch.argsort(repeat, descending=True)[:2].tolist()) == {1, 2}
    plain = build_model("blend", 6, **config)  # old artifacts: no prior, history on top
    plain.parts[0].fit([[1, 2, 3, 4]] * 50 + [[5, 6]])
    assert int(plain.full_sort_predict(history)[0].argmax()) in {1, 2}


def test_sampled_softmax_and_attribute_fusion_train(cyclic_split) -> None:
    attributes = [[]] + [[i % 3 + 1] for i in range(1, N_ITEMS + 1)]
    config = TrainConfig(epochs=3, batch_size=64, lr=5e-3, progress=False, threads=1)
    model, result = build_and_train("sasrec", cyclic_split, {**TINY_SASREC, "negatives": 8},
                                    config, item_attributes=attributes)
    assert result.epochs_run == 3 and model.attr_emb is not None
    assert torch.equal(model.item_attributes[4], torch.tensor([2]))


def test_time_budget_stops_training(cyclic_split) -> None:
    # Patience beyond the epoch count: only the budget can stop it, however fast the machine.
    config = TrainConfig(epochs=500, batch_size=64, time_budget_s=0.5, patience=1000,
                         progress=False, threads=1)
    _, result = build_and_train("sasrec", cyclic_split, TINY_SASREC, config)
    assert result.stopped == "time budget" and result.epochs_run < 500


# --------------------------------------------------------------------------- artifacts


def test_artifact_roundtrip_and_bad_files(tmp_path: Path, trained_sasrec, caplog) -> None:
    model, _ = trained_sasrec
    vocab = cyclic_dataset().vocab
    path = save_model(model, vocab, tmp_path / "m" / "sasrec.pt", meta={"note": "test"})
    loaded = load_model(path)
    history = pad_sequences([[3, 4, 5]], 12)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.model.full_sort_predict(history),
                              model.full_sort_predict(history))
    assert loaded.vocab.item_ids == vocab.item_ids and loaded.meta["note"] == "test"

    with pytest.raises(ArtifactMissingError):
        load_model(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:500])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    for bad in (truncated, garbage, other):
        with pytest.raises(ArtifactCorruptError):
            load_model(bad)
    with caplog.at_level(logging.WARNING):
        assert try_load_model(garbage) is None
    assert "garbage.pt" in caplog.text


# --------------------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, trained_sasrec) -> Path:
    model, _ = trained_sasrec
    return save_model(model, cyclic_dataset().vocab,
                      tmp_path_factory.mktemp("models") / "sasrec.pt")


def test_recommender_uses_the_model_on_a_changed_catalog(model_file: Path, caplog) -> None:
    # p30 was removed from the shop, n1/n2 are new; the model never saw n1/n2.
    catalog = [f"p{i}" for i in range(1, N_ITEMS)] + ["n1", "n2"]
    with caplog.at_level(logging.INFO):
        recommender = Recommender.from_file(model_file, catalog)
        picks = recommender.recommend(["p3", "ghost", "p4", "p5"], k=5)
    assert "catalog changed since training" in caplog.text
    assert "ghost" in caplog.text
    assert picks[0].item_id == "p6" and picks[0].source == "model"
    assert len(picks) == 5 and not {"p3", "p4", "p5"} & {p.item_id for p in picks}

    tail = recommender.recommend(["p28", "p29"], k=40)
    ids = [p.item_id for p in tail]
    assert "p30" not in ids and len(ids) == len(set(ids)) == len(catalog) - 2
    assert {"n1", "n2"} <= set(ids)


def test_content_fusion_scores_items_the_model_never_saw(cyclic_split) -> None:
    content = torch.zeros(N_ITEMS + 1, 8)
    content[1:, :] = torch.nn.functional.one_hot(torch.arange(N_ITEMS) % 8, 8).float()
    config = TrainConfig(epochs=15, batch_size=64, lr=5e-3, progress=False, threads=1)
    model, _ = build_and_train("sasrec", cyclic_split, TINY_SASREC, config,
                               item_content=content)
    assert model.content_proj is not None and model.config["content_dim"] == 8
    vocab = cyclic_dataset().vocab
    catalog = [*vocab.item_ids, "new"]
    vectors = np.vstack([content[1:].numpy(), content[6].numpy()])  # looks like p6
    recommender = Recommender(catalog, TrainedModel(model, vocab, vocab.fingerprint()), vectors)
    picks = recommender.recommend(["p3", "p4", "p5"], k=N_ITEMS)
    assert {p.source for p in picks} == {"model"}
    assert "new" in [p.item_id for p in picks[: N_ITEMS // 2]]


def test_recommender_filters_and_fallbacks(model_file: Path) -> None:
    catalog = [f"p{i}" for i in range(1, N_ITEMS + 1)]
    vectors = np.zeros((N_ITEMS, 4), dtype=np.float32)
    vectors[np.arange(N_ITEMS), np.arange(N_ITEMS) % 4] = 1.0  # four content clusters
    popularity = {item: float(n) for n, item in enumerate(catalog)}
    recommender = Recommender.from_file(model_file, catalog, vectors, popularity)

    allowed = {"p1", "p2", "p10", "p11"}
    picks = recommender.recommend(["p9"], k=3, allowed=allowed)
    assert picks[0].item_id == "p10" and {p.item_id for p in picks} <= allowed
    odd = recommender.recommend(["p9"], k=3, allowed=lambda i: int(i[1:]) % 2 == 1)
    assert all(int(p.item_id[1:]) % 2 == 1 for p in odd)
    assert recommender.recommend(["p9"], k=2, exclude=set())[0].item_id == "p10"
    assert recommender.recommend(["p9"], k=2, exclude={"p10"})[0].item_id != "p10"

    cold = Recommender(catalog, None, vectors, popularity)
    content = cold.recommend(["p1", "p5"], k=3)
    assert [p.source for p in content] == ["content"] * 3
    assert all((int(p.item_id[1:]) - 1) % 4 == 0 for p in content)
    assert content[0].because in {"p1", "p5"}
    popular = cold.recommend([], k=3)
    assert [p.item_id for p in popular] == ["p30", "p29", "p28"]
    assert {p.source for p in popular} == {"popular"} and popular[0].because is None


def test_recommender_never_raises(tmp_path: Path, caplog) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00" * 64)
    catalog = ["a", "b", "c"]
    with caplog.at_level(logging.WARNING):
        recommender = Recommender.from_file(broken, catalog, np.ones((2, 3)), [1.0])
    assert recommender.trained is None and "fallback" in caplog.text
    assert [p.item_id for p in recommender.recommend([], k=2)] == ["a", "b"]
    assert recommender.recommend([None, 5, "", "zzz"], k=1)[0].source == "popular"  # type: ignore[list-item]
    assert [p.item_id for p in recommender.recommend("a", k=2)] == ["b", "c"]

    def explode(item: str) -> bool:
        raise RuntimeError("filter bug")

    assert recommender.recommend(["a"], k=2, allowed=explode) == []
    assert recommender.recommend(["a"], k=0) == []
    assert recommender.similar_items("nope", k=3) == []


def test_similar_items_blend_content_and_cooccurrence(cyclic_split) -> None:
    knn, _ = build_and_train("itemknn", cyclic_split,
                             train_config=TrainConfig(progress=False, threads=1))
    catalog = [f"p{i}" for i in range(1, N_ITEMS + 1)]
    trained = TrainedModel(knn, cyclic_dataset().vocab, cyclic_dataset().vocab.fingerprint())
    by_cooccurrence = Recommender(catalog, trained).similar_items("p10", k=2)
    assert [p.item_id for p in by_cooccurrence] == ["p11", "p12"]  # what follows p10
    assert by_cooccurrence[0].source == "model"
    vectors = np.eye(N_ITEMS, dtype=np.float32)
    vectors[19] = vectors[9]  # p20 looks exactly like p10
    blended = Recommender(catalog, trained, vectors).similar_items("p10", k=3,
                                                                   allowed=lambda i: i != "p9")
    assert blended[0].item_id == "p20" and blended[1].item_id == "p11"


# --------------------------------------------------------------------------- CLI


def test_cli_train_and_eval(tmp_path: Path) -> None:
    data = tmp_path / "amazon_cyclic.txt"
    dataset = cyclic_dataset(users=120)
    data.write_text("".join(f"{u} " + " ".join(str(i) for i in seq) + "\n"
                            for u, seq in zip(dataset.user_ids, dataset.sequences, strict=True)))
    runner = CliRunner()
    out = tmp_path / "knn.pt"
    done = runner.invoke(app, ["train", str(data), "--model", "itemknn", "--out", str(out),
                               "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["test"]["hr@10"] > 0.9 and out.is_file()
    done = runner.invoke(app, ["train", str(data), "--model", "sasrec", "--epochs", "1",
                               "--hidden", "16", "--blocks", "1", "--out",
                               str(tmp_path / "s.pt"), "--json"])
    assert done.exit_code == 0, done.output
    assert load_model(tmp_path / "s.pt").model.config["n_attributes"] == 0
    (tmp_path / "amazon_cyclic_item2attributes.json").write_text(json.dumps(
        {str(i): [i % 3] for i in range(1, N_ITEMS + 1)}))
    for extra, n_attributes in (([], 3), (["--no-attributes"], 0)):
        done = runner.invoke(app, ["train", str(data), "--model", "sasrec", "--epochs", "1",
                                   "--hidden", "16", "--blocks", "1", "--out",
                                   str(tmp_path / "s.pt"), "--json", *extra])
        assert done.exit_code == 0, done.output
        assert load_model(tmp_path / "s.pt").model.config["n_attributes"] == n_attributes
    evaluated = runner.invoke(app, ["eval", str(out), str(data), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["test"]["hr@10"] > 0.9

    bad_model = tmp_path / "bad.pt"
    bad_model.write_text("oops")
    assert runner.invoke(app, ["eval", str(bad_model), str(data)]).exit_code == 2
    assert runner.invoke(app, ["train", str(tmp_path / "missing.txt")]).exit_code == 2
    assert runner.invoke(app, ["train", str(data), "--model", "nope"]).exit_code == 2


def test_installed_command_trains_on_the_shops_own_event_log(tmp_path: Path) -> None:
    """`shopbot recsys train --events`, as the README tells a shop: the log in its database."""
    from recsys.events import Event
    from shop.events import EventLog
    from shopcore.db import Database
    from tests.e2e import shopbot

    database = Database(f"sqlite:///{tmp_path / 'var' / 'shop.db'}")
    dataset = cyclic_dataset(users=120)
    EventLog(database).log_many(
        Event(f"shopper-{u}", f"p{item}", "opened", float(step))
        for u, seq in zip(dataset.user_ids, dataset.sequences, strict=True)
        for step, item in enumerate(seq))
    database.dispose()
    out = tmp_path / "from-events.pt"
    env = {"SHOPBOT_VAR_DIR": str(tmp_path / "var")}
    done = shopbot("recsys", "train", "--events", "--model", "itemknn", "--out", str(out),
                   "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["dataset"]["users"] == 120 and summary["test"]["hr@10"] > 0.9
    assert set(load_model(out).vocab.item_ids) == {f"p{i}" for i in range(1, N_ITEMS + 1)}
    neither = shopbot("recsys", "train", "--model", "itemknn", cwd=tmp_path, env=env)
    assert neither.returncode == 2 and "--events" in neither.stderr


# --------------------------------------------------------------------------- real data


@pytest.mark.shared_data
@pytest.mark.skipif(not BEAUTY.is_file(), reason=f"Amazon Beauty not found at {BEAUTY}")
def test_real_beauty_file_loads_and_splits() -> None:
    dataset = load_amazon(BEAUTY)
    assert dataset.summary() == {"name": "amazon_beauty", "users": 22363, "items": 12101,
                                 "interactions": 198502}
    split = leave_one_out(dataset)
    assert len(split.test_targets) == len(split.valid_targets) == 22363
    assert sum(map(len, split.train)) == 198502 - 2 * 22363
    popular, _ = build_and_train("popular", split,
                                 train_config=TrainConfig(progress=False, threads=1))
    sample = slice(0, 2000)
    metrics = LeaveOneOutEvaluator(split.test_histories[sample], split.test_targets[sample])(
        popular)
    assert 0.0 < metrics["hr@10"] < 0.05  # popularity is a weak but non-zero baseline
