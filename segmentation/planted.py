"""Customer tables with a known number of groups: the suite that K selection is measured on.

``synthetic.py`` makes one demo table (the seed documents' archetypes) at any size on
the executors. This module makes many small, varied tables on the driver (numpy), each
with its answer: how many groups were planted, which row is in which, and whether the
groups are well separated (one right K) or overlap (no single right K).

What varies, table to table (all drawn from one seed):

- the planted K, 1 to 9 (1: no group structure at all);
- 2 to 8 features, each on its own unrelated scale and offset (a count, a money amount
  in the hundred thousands, a score in tenths, ...);
- group sizes, unequal, the smallest down to 3% of the rows;
- group spreads, unequal (up to 3x between groups) and not round (each feature's spread
  within a group varies up to 2x);
- the separation. It is measured where K-means sees the data, after standardizing each
  feature: for every pair of groups, the distance between their centres divided by the
  sum of their spreads along the line joining them. A table is ``separated`` when the
  smallest such ratio is at least ``SEPARATED`` (3.5: the groups' 3.5-sigma halves do not
  touch), ``overlapping`` when it is below ``OVERLAPPING_BELOW`` (1.5: neighbours blend).

The generator places centres at random and rejects a draw until the table is of the kind
asked for, so every ``separated`` table really has one right answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SEPARATED = 3.5
OVERLAPPING_BELOW = 1.5
MIN_SHARE = 0.03
KINDS = ("separated", "overlapping", "none")


@dataclass
class PlantedTable:
    """One table of the suite and its answer."""

    name: str
    kind: str  # separated, overlapping, or none (a single group)
    k: int  # planted groups
    customers: pd.DataFrame  # customer_id (string) and the features
    truth: np.ndarray  # the planted group of each row
    separation: float  # the smallest pairwise separation (inf with one group)

    @property
    def features(self) -> list[str]:
        return [c for c in self.customers.columns if c != "customer_id"]


def separation(centers: np.ndarray, spreads: np.ndarray) -> float:
    """The smallest pairwise centre distance over the sum of the two groups' spreads along it.

    ``centers`` and ``spreads`` are (k, d): each group's mean and per-feature standard
    deviation, in the space K-means clusters (standardized features). inf for one group.
    """
    smallest = np.inf
    for i in range(len(centers)):
        for j in range(i + 1, len(centers)):
            gap = centers[i] - centers[j]
            distance = float(np.linalg.norm(gap))
            if distance == 0.0:
                return 0.0
            u = gap / distance
            along = np.sqrt(np.sum((u * spreads[i]) ** 2)) + np.sqrt(np.sum((u * spreads[j]) ** 2))
            smallest = min(smallest, distance / along)
    return smallest


def planted_table(seed: int, k: int, features: int, kind: str, rows: int = 20_000) -> PlantedTable:
    """One table of ``rows`` customers in ``k`` planted groups over ``features`` features."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "none" and k != 1 or kind != "none" and k < 2:
        raise ValueError("kind 'none' has exactly one group; the others at least two")
    rng = np.random.default_rng(seed)
    shares = _shares(rng, k)
    sizes = np.floor(shares * rows).astype(int)
    sizes[np.argmax(sizes)] += rows - sizes.sum()
    for _ in range(10_000):
        spreads = rng.uniform(0.5, 1.5, size=(k, 1)) * rng.uniform(0.7, 1.4, size=(k, features))
        centers = _centers(rng, k, features, spreads, kind)
        # Separation where K-means sees it: after each feature is divided by its overall sd.
        means = shares @ centers
        overall = np.sqrt(shares @ (spreads**2 + (centers - means) ** 2))
        found = separation(centers / overall, spreads / overall)
        if _is_kind(found, kind):
            break
    else:  # pragma: no cover - the draws above succeed within a few tries
        raise RuntimeError(f"no {kind} table with k={k}, features={features} after 10,000 draws")
    truth = np.repeat(np.arange(k), sizes)
    latent = centers[truth] + rng.standard_normal((rows, features)) * spreads[truth]
    order = rng.permutation(rows)
    latent, truth = latent[order], truth[order]
    # Unrelated scales: each feature gets its own unit (x 10^-1 .. 10^4) and offset.
    scale = 10.0 ** rng.uniform(-1, 4, size=features)
    offset = rng.uniform(0, 50, size=features) * scale
    values = offset + latent * scale
    table = pd.DataFrame({"customer_id": [f"C{i:06d}" for i in range(rows)]})
    for f in range(features):
        table[f"feature_{f + 1}"] = values[:, f]
    name = f"{kind}-k{k}-d{features}-s{seed}"
    return PlantedTable(name, kind, k, table, truth, found)


def suite(seed: int = 2026, rows: int = 20_000) -> list[PlantedTable]:
    """The K-selection suite: 32 separated tables (K = 2..9, four each), 12 overlapping
    (K = 3..8, two each) and 3 with no group structure, each from its own seed."""
    rng = np.random.default_rng(seed)
    plans = [("separated", k) for k in range(2, 10) for _ in range(4)]
    plans += [("overlapping", k) for k in range(3, 9) for _ in range(2)]
    plans += [("none", 1)] * 3
    tables = []
    for index, (kind, k) in enumerate(plans):
        features = int(rng.integers(2, 9))
        tables.append(planted_table(seed * 1000 + index, k, features, kind, rows))
    return tables


def _shares(rng: np.random.Generator, k: int) -> np.ndarray:
    """Unequal group shares, none below MIN_SHARE; one table in three has a group at about 3%."""
    weights = rng.uniform(0.2, 1.0, size=k) ** 2
    shares = MIN_SHARE + (1 - MIN_SHARE * k) * weights / weights.sum()
    if k > 2 and rng.random() < 1 / 3:
        small = int(rng.integers(k))
        rest = np.delete(shares, small)
        shares[small] = MIN_SHARE
        shares[np.arange(k) != small] = rest / rest.sum() * (1 - MIN_SHARE)
    return shares


def _centers(rng: np.random.Generator, k: int, d: int, spreads: np.ndarray, kind: str) -> np.ndarray:
    """Centres placed one at a time, each at the wanted separation from the ones before."""
    low, high = (SEPARATED * 1.1, SEPARATED * 2.5) if kind == "separated" else (0.6, OVERLAPPING_BELOW * 0.95)
    centers = np.zeros((k, d))
    for c in range(1, k):
        for _ in range(1000):
            anchor = centers[rng.integers(c)]
            direction = rng.standard_normal(d)
            direction /= np.linalg.norm(direction)
            others = centers[:c]
            gap = rng.uniform(low, high) * 2.0 * float(spreads[c].mean() + spreads[:c].mean()) / 2.0
            candidate = anchor + direction * gap
            distances = np.linalg.norm(others - candidate, axis=1)
            reach = (spreads[:c].mean(axis=1) + spreads[c].mean())
            if kind != "separated" or np.all(distances >= low * reach):
                centers[c] = candidate
                break
        else:
            centers[c] = anchor + direction * gap
    return centers


def _is_kind(found: float, kind: str) -> bool:
    if kind == "separated":
        return found >= SEPARATED
    if kind == "overlapping":
        return found < OVERLAPPING_BELOW
    return True
