"""Stage 7, name segments: a readable, deterministic name for each centroid.

The rule, in order:

1. Each feature is given a *role* from words in its name: ``age``; ``income``
   (income, salary, earnings); ``spending`` (spending, spend, monetary, amount,
   revenue, sales); ``frequency`` (frequency, purchases, orders, visits,
   transactions). A role's level in a segment is the mean z-score of its features
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

3. Names are unique within a run: when several segments match one archetype, the
   one that matches most strongly (largest summed |z| over the archetype's roles,
   then lowest segment number) keeps it. Every other segment is described by its
   one or two most distinctive features, e.g. ``High annual_income, low spending``;
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


def name_segments(features: tuple[str, ...], centroids_z: list[list[float]]) -> list[str]:
    """One unique name per centroid (index = segment number), by the rule in the module doc."""
    roles = [feature_role(f) for f in features]
    matches = [_archetype(roles, z) for z in centroids_z]
    names: list[str | None] = [None] * len(centroids_z)
    # The strongest match of each archetype keeps its name.
    for archetype in {m[0] for m in matches if m is not None}:
        claimants = [i for i, m in enumerate(matches) if m is not None and m[0] == archetype]
        winner = min(claimants, key=lambda i: (-matches[i][1], i))
        names[winner] = archetype
    taken = {n for n in names if n is not None}
    for i, z in enumerate(centroids_z):
        if names[i] is None:
            candidate = describe(features, z)
            name, suffix = candidate, 2
            while name in taken:
                name, suffix = f"{candidate} ({suffix})", suffix + 1
            names[i] = name
            taken.add(name)
    return [n for n in names if n is not None]


def describe(features: tuple[str, ...], z: list[float]) -> str:
    """``High a, low b`` from the two most distinctive features; Mainstream if none stands out."""
    ranked = sorted(range(len(features)), key=lambda i: (-abs(z[i]), i))
    parts = [f"{level(z[i])} {features[i]}" for i in ranked[:2] if level(z[i]) != MID]
    if not parts:
        return MAINSTREAM
    text = ", ".join(parts)
    return text[0].upper() + text[1:]


def _archetype(roles: list[str | None], z: list[float]) -> tuple[str, float] | None:
    role_z: dict[str, float] = {}
    for role in {r for r in roles if r is not None}:
        values = [zi for r, zi in zip(roles, z) if r == role]
        role_z[role] = sum(values) / len(values)
    for name, conditions in ARCHETYPES:
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
            return name, strength
    if all(level(zi) == MID for zi in z):
        return MAINSTREAM, -sum(abs(zi) for zi in z)
    return None
