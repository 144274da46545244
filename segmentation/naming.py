"""Stage 7, name segments: a readable, deterministic name for each centroid.

The rule, in order:

1. Each feature is given a *role* from words in its name: ``age``; ``income``
   (income, salary, earnings); ``spending`` (spending, spend, monetary, amount,
   revenue, sales); ``frequency`` (frequency, purchases, orders, visits,
   transactions); ``recency`` (recency, recent, since). A role's level in a segment is the mean z-score of its features
   at the centroid: *high* at +0.5 or more, *low* at -0.5 or less, else *mid*.
2. The archetypes below are tried in order; a segment takes the first whose
   conditions all hold (a condition on a role the data lacks fails, unless marked
   optional):

   ======================== ==================================================
   High-Value               spending high; income not low*; frequency not low*
   Young frequent buyers    age low; frequency high; spending not high
   Affluent careful spenders income high; spending low
   Budget big spenders      income low; spending high
   Low-Engagement           spending low; frequency low*; income not high*
   Mainstream               every feature mid
   ======================== ==================================================
   (* optional: holds when the data has no such feature)

   When the features include recency, frequency and monetary roles (the RFM
   features of ``input.kind: transactions``), the RFM archetypes below are tried
   instead. ``recency`` is days since the last purchase, so *low* is recent:

   ======================== ==================================================
   Champions                recency low; frequency high; spending high
   Loyal                    frequency high; recency not high; spending not low
   At risk                  recency high; spending not low
   Hibernating              recency high
   New                      recency low; frequency low
   Potential loyalists      recency low; frequency mid
   About to sleep           recency mid; frequency low
   Need attention           every feature mid
   ======================== ==================================================

3. Names are unique within a run. Archetypes are given out in table order: of the
   segments not yet named that match one, the one that matches most strongly
   (largest summed |z| over the archetype's roles, then lowest segment number) takes
   it, and the others go on to the next archetype they match (a second Champions-like
   segment can still be Loyal). A segment left without one is described by its
   one or two most distinctive numeric features, e.g. ``High annual_income, low spending``
   (categories of a one-hot feature are not used in names);
   a name still taken gets `` (2)``, `` (3)``, ... in segment order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HIGH, MID, LOW = "high", "mid", "low"
LEVEL_THRESHOLD = 0.5

ROLE_WORDS = {
    "age": ("age",),
    "income": ("income", "salary", "earnings"),
    "spending": ("spending", "spend", "monetary", "amount", "revenue", "sales"),
    "frequency": ("frequency", "purchases", "orders", "visits", "transactions"),
    "recency": ("recency", "recent", "since"),
}


@dataclass(frozen=True)
class Condition:
    role: str
    levels: tuple[str, ...]
    optional: bool = False


ARCHETYPES: tuple[tuple[str, tuple[Condition, ...]], ...] = (
    (
        "High-Value",
        (
            Condition("spending", (HIGH,)),
            Condition("income", (MID, HIGH), optional=True),
            Condition("frequency", (MID, HIGH), optional=True),
        ),
    ),
    (
        "Young frequent buyers",
        (
            Condition("age", (LOW,)),
            Condition("frequency", (HIGH,)),
            Condition("spending", (LOW, MID)),
        ),
    ),
    ("Affluent careful spenders", (Condition("income", (HIGH,)), Condition("spending", (LOW,)))),
    ("Budget big spenders", (Condition("income", (LOW,)), Condition("spending", (HIGH,)))),
    (
        "Low-Engagement",
        (
            Condition("spending", (LOW,)),
            Condition("frequency", (LOW,), optional=True),
            Condition("income", (LOW, MID), optional=True),
        ),
    ),
)
MAINSTREAM = "Mainstream"

RFM_ROLES = ("recency", "frequency", "spending")
RFM_ARCHETYPES: tuple[tuple[str, tuple[Condition, ...]], ...] = (
    (
        "Champions",
        (Condition("recency", (LOW,)), Condition("frequency", (HIGH,)), Condition("spending", (HIGH,))),
    ),
    (
        "Loyal",
        (
            Condition("frequency", (HIGH,)),
            Condition("recency", (LOW, MID)),
            Condition("spending", (MID, HIGH)),
        ),
    ),
    ("At risk", (Condition("recency", (HIGH,)), Condition("spending", (MID, HIGH)))),
    ("Hibernating", (Condition("recency", (HIGH,)),)),
    ("New", (Condition("recency", (LOW,)), Condition("frequency", (LOW,)))),
    ("Potential loyalists", (Condition("recency", (LOW,)), Condition("frequency", (MID,)))),
    ("About to sleep", (Condition("recency", (MID,)), Condition("frequency", (LOW,)))),
)
RFM_MAINSTREAM = "Need attention"


def feature_role(feature: str) -> str | None:
    words = re.sub(r"[^a-z0-9]+", " ", feature.lower()).split()
    for role, keys in ROLE_WORDS.items():
        if any(word in keys for word in words):
            return role
    return None


def level(z: float) -> str:
    if z >= LEVEL_THRESHOLD:
        return HIGH
    if z <= -LEVEL_THRESHOLD:
        return LOW
    return MID


def name_segments(
    features: tuple[str, ...], centroids_z: list[list[float]], categorical: frozenset[str] = frozenset()
) -> list[str]:
    """One unique name per centroid (index = segment number), by the rule in the module doc.

    ``features`` names the centroids' dimensions; ``categorical`` those that are one
    category of a one-hot feature (they take no role and are not used in names).
    """
    roles = [None if f in categorical else feature_role(f) for f in features]
    rfm = all(role in roles for role in RFM_ROLES)
    archetypes, mainstream = (RFM_ARCHETYPES, RFM_MAINSTREAM) if rfm else (ARCHETYPES, MAINSTREAM)
    numeric = [i for i, f in enumerate(features) if f not in categorical]
    matches = [_matching(roles, z, archetypes, mainstream, numeric) for z in centroids_z]
    names: list[str | None] = [None] * len(centroids_z)
    # In table order, the strongest match among the segments still unnamed takes each archetype.
    for archetype in [name for name, _ in archetypes] + [mainstream]:
        claimants = [i for i, m in enumerate(matches) if names[i] is None and archetype in m]
        if claimants:
            winner = min(claimants, key=lambda i: (-matches[i][archetype], i))
            names[winner] = archetype
    taken = {n for n in names if n is not None}
    for i, z in enumerate(centroids_z):
        if names[i] is None:
            candidate = describe(tuple(features[j] for j in numeric), [z[j] for j in numeric], mainstream)
            name, suffix = candidate, 2
            while name in taken:
                name, suffix = f"{candidate} ({suffix})", suffix + 1
            names[i] = name
            taken.add(name)
    return [n for n in names if n is not None]


def describe(features: tuple[str, ...], z: list[float], mainstream: str = MAINSTREAM) -> str:
    """``High a, low b`` from the two most distinctive features; Mainstream if none stands out."""
    ranked = sorted(range(len(features)), key=lambda i: (-abs(z[i]), i))
    parts = [f"{level(z[i])} {features[i]}" for i in ranked[:2] if level(z[i]) != MID]
    if not parts:
        return mainstream
    text = ", ".join(parts)
    return text[0].upper() + text[1:]


def _matching(
    roles: list[str | None], z: list[float], archetypes, mainstream: str, numeric: list[int]
) -> dict[str, float]:
    """Every archetype the centroid matches, with the strength of the match."""
    role_z: dict[str, float] = {}
    for role in {r for r in roles if r is not None}:
        values = [zi for r, zi in zip(roles, z) if r == role]
        role_z[role] = sum(values) / len(values)
    found: dict[str, float] = {}
    for name, conditions in archetypes:
        strength = 0.0
        for cond in conditions:
            if cond.role not in role_z:
                if cond.optional:
                    continue
                break
            if level(role_z[cond.role]) not in cond.levels:
                break
            strength += abs(role_z[cond.role])
        else:
            found[name] = strength
    if all(level(z[i]) == MID for i in numeric):
        found[mainstream] = -sum(abs(z[i]) for i in numeric)
    return found
