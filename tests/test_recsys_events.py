"""The interaction log and the synthetic shopper simulator that bootstraps a demo model."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from recsys.events import Event, EventType
from recsys.simulator import SimulationConfig, simulate_events
from retrieval.catalog import load_catalog
from shop.events import EventLog
from shopcore.db import Database


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(Database(f"sqlite:///{tmp_path / 'shop.db'}"))


def test_recent_items_are_distinct_interactions_oldest_first(log: EventLog) -> None:
    log.log("alice", ["1", "2"], EventType.SHOWN, ts=1)
    log.log("alice", ["3"], EventType.OPENED, ts=2)
    log.log("alice", ["4"], EventType.OPENED, ts=3)
    log.log("alice", ["3"], EventType.ADDED_TO_CART, ts=4)
    log.log("bob", ["9"], EventType.OPENED, ts=5)
    # Shown-only products are not history; a repeat moves the product to the newest end.
    assert log.recent_items("alice") == ["4", "3"]
    assert log.recent_items("alice", limit=1) == ["3"]
    assert log.recent_items("nobody") == []
    assert log.items_of("alice", [EventType.ADDED_TO_CART]) == {"3"}


def test_bad_ids_are_skipped_not_raised(log: EventLog) -> None:
    assert log.log("", ["1"], EventType.OPENED) == 0
    assert log.log("alice", ["", "x" * 500, "ok", None], EventType.OPENED) == 1  # type: ignore[list-item]
    with pytest.raises(ValueError):
        log.log("alice", ["1"], "teleported")
    assert log.count() == 1


def test_forget_deletes_only_that_shopper(log: EventLog) -> None:
    log.log("alice", ["1", "2"], EventType.OPENED)
    log.log("bob", ["1"], EventType.PURCHASED)
    assert log.forget("alice") == 2
    assert log.recent_items("alice") == []
    assert log.recent_items("bob") == ["1"]
    assert log.popularity() == Counter({"1": 1})


def test_concurrent_writers_lose_nothing(log: EventLog) -> None:
    def write(sender: str) -> None:
        for i in range(50):
            log.log(sender, [str(i)], EventType.OPENED)

    threads = [threading.Thread(target=write, args=(f"s{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.count() == 200
    events = list(log.iter_events())
    assert [e.ts for e in events] == sorted(e.ts for e in events)


def test_simulated_sessions_are_coherent_and_deterministic(tmp_path: Path) -> None:
    products, _ = load_catalog(None)
    by_id = {p.id: p for p in products}
    config = SimulationConfig(shoppers=300, seed=3)
    events = simulate_events(products, config)
    assert events == simulate_events(products, config)
    assert all(e.product_id in by_id for e in events)
    assert [e.ts for e in events] == sorted(e.ts for e in events)

    per_shopper: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        per_shopper[event.sender_id].append(event)
    assert len(per_shopper) == 300
    consistent_gender = 0
    for shopper_events in per_shopper.values():
        genders = {by_id[e.product_id].gender for e in shopper_events} - {"Unisex"}
        consistent_gender += len(genders) <= 1
        carted = set()
        for event in shopper_events:
            if event.event_type == EventType.ADDED_TO_CART:
                carted.add(event.product_id)
            if event.event_type == EventType.PURCHASED:
                assert event.product_id in carted  # nobody buys what they never carted
    assert consistent_gender == len(per_shopper)

    # Complete-the-look: after tops, shoppers often open bottoms or shoes next.
    transitions = Counter()
    for shopper_events in per_shopper.values():
        opened = [by_id[e.product_id].sub_category for e in shopper_events
                  if e.event_type == EventType.OPENED]
        transitions.update(zip(opened, opened[1:], strict=False))
    after_topwear = {b: n for (a, b), n in transitions.items() if a == "Topwear" and b != a}
    assert after_topwear and max(after_topwear, key=after_topwear.get) in {
        "Bottomwear", "Shoes", "Watches", "Belts", "Eyewear"
    }

    log = EventLog(Database(f"sqlite:///{tmp_path / 'sim.db'}"))
    assert log.log_many(events) == len(events)
    assert sum(1 for _ in log.iter_events()) == len(events)


def test_demo_recommender_trains_on_simulated_sessions_and_is_labelled(tmp_path: Path) -> None:
    from recsys.artifacts import try_load_model
    from recsys.bootstrap import train_demo_recommender
    from recsys.serving import Recommender

    products, _ = load_catalog(None)
    summary = train_demo_recommender(products, tmp_path / "rec.pt", shoppers=300,
                                     time_budget_s=10)
    assert summary["synthetic"] is True and summary["events"] > 1000
    trained = try_load_model(tmp_path / "rec.pt")
    assert trained is not None and trained.meta["synthetic"] is True
    recommender = Recommender([p.id for p in products], trained)
    picks = recommender.recommend([products[0].id], k=5)
    assert len(picks) == 5 and {p.source for p in picks} == {"model"}
