"""A shopper-session simulator over any catalog, to bootstrap a demo recommender.

SYNTHETIC DATA. The Myntra catalog has no public interaction log, so a new shop has nothing
to train on. This module invents shoppers whose behaviour is coherent enough for a sequence
model to learn something useful, and nothing more:

* each shopper has a gender, a style (the catalog's ``usage``: Casual, Formal, Sports,
  Ethnic...), a budget band (cheap / mid / premium *within each article type*), two
  favourite colours and a few favourite brands;
* a session starts on an article type the shopper's gender and style carry, browses a few
  products of it (preferring their colours, brands and budget), may add one to the cart and
  buy it, and then often moves on to complete the look (top -> bottom -> shoes ->
  accessory), following a small table over the catalog's sub-categories;
* shoppers come back for a few sessions, with timestamps spread over weeks.

Real shops train on their own event log (`recsys.events`) with the same command; the README
labels any model trained on this as synthetic.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from recsys.events import Event, EventType
from retrieval.catalog import Product

# Complete-the-look: from a sub-category, where shoppers tend to go next. Sub-categories a
# catalog lacks are skipped; catalogs without these names fall back to "any other type".
NEXT_SUB_CATEGORY: dict[str, tuple[str, ...]] = {
    "Topwear": ("Bottomwear", "Shoes", "Watches", "Belts", "Eyewear"),
    "Bottomwear": ("Topwear", "Shoes", "Belts", "Socks"),
    "Dress": ("Sandal", "Shoes", "Bags", "Jewellery", "Eyewear"),
    "Saree": ("Jewellery", "Sandal", "Bags"),
    "Shoes": ("Socks", "Bottomwear", "Topwear", "Shoe Accessories"),
    "Sandal": ("Dress", "Bags", "Jewellery"),
    "Flip Flops": ("Topwear", "Bottomwear", "Eyewear"),
    "Watches": ("Wallets", "Belts", "Eyewear", "Topwear"),
    "Bags": ("Wallets", "Watches", "Jewellery", "Eyewear"),
    "Wallets": ("Belts", "Watches", "Bags"),
    "Belts": ("Wallets", "Bottomwear", "Watches"),
    "Eyewear": ("Headwear", "Watches", "Topwear"),
    "Jewellery": ("Bags", "Dress", "Sandal"),
    "Innerwear": ("Loungewear and Nightwear", "Socks"),
    "Loungewear and Nightwear": ("Innerwear", "Flip Flops"),
    "Socks": ("Shoes", "Innerwear"),
    "Headwear": ("Eyewear", "Topwear"),
    "Ties": ("Topwear", "Cufflinks", "Belts"),
    "Fragrance": ("Watches", "Lips", "Skin Care"),
    "Lips": ("Nails", "Makeup", "Fragrance"),
    "Nails": ("Lips", "Makeup"),
    "Makeup": ("Lips", "Nails", "Eyes"),
}
BUDGET_BANDS = 3


@dataclass(frozen=True)
class SimulationConfig:
    shoppers: int = 5000
    sessions_per_shopper: tuple[int, int] = (1, 4)
    views_per_type: tuple[int, int] = (2, 5)
    complete_the_look: float = 0.65  # chance to move on to a matching type
    add_to_cart: float = 0.35
    purchase_after_cart: float = 0.6
    explore: float = 0.15  # chance a pick ignores the shopper's taste
    start_ts: float = 1_700_000_000.0
    seed: int = 7


@dataclass(frozen=True)
class _Shopper:
    sender_id: str
    gender: str
    style: str
    budget: int
    colours: tuple[str, ...]
    brands: frozenset[str]


class ShopperSimulator:
    """Generates coherent synthetic sessions over ``products``; deterministic for a seed."""

    def __init__(self, products: Sequence[Product], config: SimulationConfig | None = None):
        self.config = config or SimulationConfig()
        self.rng = random.Random(self.config.seed)
        usable = [p for p in products if p.article_type]
        if not usable:
            raise ValueError("the catalog has no products with an article type to simulate")
        self.budget_band = _budget_bands(usable)
        # (gender, style) -> sub-category -> article type -> products
        self.space: dict[tuple[str, str], dict[str, dict[str, list[Product]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(list))
        )
        for product in usable:
            for gender in _shopper_genders(product.gender):
                sub = product.sub_category or product.article_type
                self.space[gender, product.usage or "Casual"][sub][product.article_type].append(
                    product
                )
        self.personas = [(key, _size(value)) for key, value in self.space.items()]

    def shoppers(self) -> Iterator[_Shopper]:
        keys = [key for key, _ in self.personas]
        weights = [weight for _, weight in self.personas]
        for number in range(self.config.shoppers):
            gender, style = self.rng.choices(keys, weights)[0]
            subs = self.space[gender, style]
            pool = [p for types in subs.values() for items in types.values() for p in items]
            colours = tuple(
                {self.rng.choice(pool).base_colour for _ in range(2)} - {""}
            ) or ("",)
            brands = frozenset(self.rng.choice(pool).brand for _ in range(3))
            yield _Shopper(
                sender_id=f"sim-{number:06d}",
                gender=gender,
                style=style,
                budget=self.rng.randrange(BUDGET_BANDS),
                colours=colours,
                brands=brands,
            )

    def events(self) -> Iterator[Event]:
        """Every simulated event, shopper by shopper, sessions in time order."""
        cfg = self.config
        for shopper in self.shoppers():
            ts = cfg.start_ts + self.rng.uniform(0, 30 * 86400)
            for _ in range(self.rng.randint(*cfg.sessions_per_shopper)):
                yield from self._session(shopper, ts)
                ts += self.rng.uniform(1, 14) * 86400

    def _session(self, shopper: _Shopper, ts: float) -> Iterator[Event]:
        cfg = self.config
        subs = self.space[shopper.gender, shopper.style]
        sub = self.rng.choices(list(subs), [_size(subs[s]) for s in subs])[0]
        seen: set[str] = set()
        while True:
            types = subs[sub]
            article_type = self.rng.choices(list(types), [len(v) for v in types.values()])[0]
            opened: list[str] = []
            for _ in range(self.rng.randint(*cfg.views_per_type)):
                product = self._pick(shopper, types[article_type], seen)
                if product is None:
                    break
                seen.add(product.id)
                opened.append(product.id)
                ts += self.rng.uniform(20, 240)
                yield Event(shopper.sender_id, product.id, EventType.OPENED, ts)
            if opened and self.rng.random() < cfg.add_to_cart:
                chosen = self.rng.choice(opened)
                ts += self.rng.uniform(10, 120)
                yield Event(shopper.sender_id, chosen, EventType.ADDED_TO_CART, ts)
                if self.rng.random() < cfg.purchase_after_cart:
                    ts += self.rng.uniform(30, 600)
                    yield Event(shopper.sender_id, chosen, EventType.PURCHASED, ts)
            if self.rng.random() >= cfg.complete_the_look:
                return
            next_subs = [s for s in NEXT_SUB_CATEGORY.get(sub, ()) if s in subs]
            if not next_subs:
                next_subs = [s for s in subs if s != sub]
            if not next_subs:
                return
            sub = self.rng.choice(next_subs)

    def _pick(self, shopper: _Shopper, items: list[Product], seen: set[str]) -> Product | None:
        """A product of this type the shopper would plausibly open (taste, budget, novelty)."""
        for _ in range(12):
            product = self.rng.choice(items)
            if product.id in seen:
                continue
            if self.rng.random() < self.config.explore:
                return product
            score = (
                (product.base_colour in shopper.colours)
                + (product.brand in shopper.brands)
                + (self.budget_band.get(product.id) == shopper.budget)
            )
            if score >= 1 or self.rng.random() < 0.1:
                return product
        unseen = [p for p in items if p.id not in seen]
        return self.rng.choice(unseen) if unseen else None


def simulate_events(
    products: Sequence[Product], config: SimulationConfig | None = None
) -> list[Event]:
    """All events of a simulation, sorted by time (the order an event log would hold)."""
    events = list(ShopperSimulator(products, config).events())
    events.sort(key=lambda e: e.ts)
    return events


def _budget_bands(products: Sequence[Product]) -> dict[str, int]:
    """Each product's price tercile within its article type (0 cheap .. 2 premium)."""
    by_type: dict[str, list[Product]] = defaultdict(list)
    for product in products:
        by_type[product.article_type].append(product)
    bands: dict[str, int] = {}
    for items in by_type.values():
        ranked = sorted(items, key=lambda p: p.discounted_price or p.price)
        for rank, product in enumerate(ranked):
            bands[product.id] = rank * BUDGET_BANDS // len(ranked)
    return bands


def _shopper_genders(gender: str) -> tuple[str, ...]:
    """Unisex products are shopped by men and women alike."""
    if gender == "Unisex":
        return ("Men", "Women")
    return (gender or "Unisex",)


def _size(subs: dict[str, dict[str, list[Product]]] | dict[str, list[Product]]) -> int:
    total = 0
    for value in subs.values():
        total += _size(value) if isinstance(value, dict) else len(value)
    return total
