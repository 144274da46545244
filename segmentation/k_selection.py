"""Stage 5, select K: how many segments there really are, from the sweep's signals.

Every signal comes from the sweep on the fit rows, so choosing K costs no pass over the
data: the WSSSE of each K (best of its seeds), the silhouette of each K (on
``elbow.silhouette_rows`` of the fit rows) and the total sum of squares of the scaled
fit rows (the WSSSE of K = 1: (rows - 1) x dimensions, since the scaler was fitted on
those very rows).

The default rule, ``auto``, does what an analyst does with the elbow plot and the
silhouette side by side:

1. **Candidates**: the K whose silhouette is within ``SILHOUETTE_MARGIN`` of the best
   one: segmentations that separate customers (almost) as cleanly as the best.
   Measuring only the best silhouette undercounts when groups come in tight families:
   two close groups far from the rest score higher merged than apart.
2. **The elbow confirms**: a candidate K counts only if the step from K - 1 to K cut
   the WSSSE (on a log scale) at least ``ELBOW_RATIO`` times as much as the step from K
   to K + 1: adding the K-th segment separated real groups, adding one more only split
   a group. (Splitting a single round group cuts its WSSSE by a fixed share, 2 / (pi d)
   in d dimensions; separating two far-apart groups cuts much more.)
3. The best silhouette's K is the floor: a larger candidate is chosen when the elbow
   confirms it (the largest such), else the best silhouette's K.

Measured on the suite of tables with planted groups (``segmentation/planted.py``,
``make bench-k``, BENCHMARKS.md): it finds the planted K where every single rule here
(the silhouette, the two-line elbow, Kneedle, the relative WSSSE drop,
Calinski-Harabasz) misses some.

The grouping is called clear when the best silhouette reaches ``STRONG_SILHOUETTE``, or
reaches ``CLEAR_SILHOUETTE`` with an elbow confirming a candidate. Otherwise the data has
no clear natural grouping, and the elbow (the two-line fit) chooses K as the seed
notebooks do: the run still segments (a business
needs segments), and the manifest, the log and the report say so in words.

The other rules stay selectable with ``k.rule``: ``elbow`` (the two-line fit, or
L-method, of Salvador & Chan 2004), ``silhouette`` (the highest), ``kneedle``,
``relative_drop`` (the K whose last segment cut the WSSSE by the largest share),
``calinski_harabasz``; ``--k N`` fixes K. For ``algorithm: gmm`` the lowest BIC decides
(a mixture is a likelihood model). A K range too short for a rule falls back as
``fallback`` below says, and ``decided_by`` in the manifest names what decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

RULES = ("auto", "elbow", "silhouette", "kneedle", "relative_drop", "calinski_harabasz")
SILHOUETTE_MARGIN = 0.05
ELBOW_RATIO = 1.2
CLEAR_SILHOUETTE = 0.5
STRONG_SILHOUETTE = 0.7
MIN_POINTS_FOR_TWO_LINES = 6


@dataclass(frozen=True)
class KSelection:
    chosen_k: int
    rule: str  # the rule asked for: auto, elbow, ..., fixed, bic
    decided_by: str  # what decided, in words
    summary: str  # why, in words a marketer can read
    clear_structure: Optional[bool]  # None where the rule does not judge it (fixed, bic)
    signals: dict[int, dict[str, Optional[float]]] = field(default_factory=dict)
    candidates: list[dict] = field(default_factory=list)
    silhouette_k: Optional[int] = None

    def to_dict(self) -> dict:
        return {
            "chosen_k": self.chosen_k,
            "rule": self.rule,
            "decided_by": self.decided_by,
            "summary": self.summary,
            "clear_structure": self.clear_structure,
            "candidates": self.candidates,
            "signals": {str(k): v for k, v in self.signals.items()},
            "thresholds": {
                "silhouette_margin": SILHOUETTE_MARGIN,
                "elbow_ratio": ELBOW_RATIO,
                "clear_silhouette": CLEAR_SILHOUETTE,
                "strong_silhouette": STRONG_SILHOUETTE,
            },
            "silhouette_best_k": self.silhouette_k,
            "silhouette_agrees": self.silhouette_k == self.chosen_k,
        }


def select_k(
    ks: list[int],
    wssse: list[float],
    silhouette: Optional[list[Optional[float]]] = None,
    fixed: Optional[int] = None,
    bic: Optional[list[float]] = None,
    total: Optional[float] = None,
    rows: Optional[int] = None,
    rule: str = "auto",
) -> KSelection:
    """Chooses K from the sweep's signals by ``rule``; ``fixed`` overrides every rule.

    ``total`` is the total sum of squares of the scaled fit rows (the WSSSE of K = 1) and
    ``rows`` their number: with them the step into the first K is known, and
    Calinski-Harabasz can be computed. ``bic`` (a Gaussian mixture's, per K) makes the
    lowest BIC decide."""
    if len(ks) != len(wssse) or not ks:
        raise ValueError("ks and wssse must be non-empty and of equal length")
    if rule not in RULES:
        raise ValueError(f"unknown K rule {rule!r}; use one of {', '.join(RULES)}")
    silhouette = list(silhouette) if silhouette else [None] * len(ks)
    signals = _signals(ks, wssse, silhouette, total, rows, bic)
    silhouette_k = _best(ks, silhouette, highest=True)
    best_sil = max((s for s in silhouette if s is not None), default=None)

    def selection(k: int, used: str, decided_by: str, summary: str, clear: Optional[bool], candidates=()):
        return KSelection(k, used, decided_by, summary, clear, signals, list(candidates), silhouette_k)

    if fixed is not None:
        return selection(fixed, "fixed", "fixed", f"K = {fixed} was set by the user (--k).", None)
    if bic is not None:
        chosen = _best(ks, bic, highest=False)
        return selection(
            chosen, "bic", "lowest BIC (Gaussian mixture log-likelihood)",
            f"K = {chosen}: the Gaussian mixture with the lowest BIC, the best balance of fit and complexity.",
            None,
        )
    clear_silhouette = best_sil is not None and best_sil >= CLEAR_SILHOUETTE
    if rule == "auto":
        return _auto(ks, signals, silhouette_k, best_sil, selection)
    if rule == "silhouette" and silhouette_k is not None:
        return selection(silhouette_k, rule, "highest silhouette",
                         f"K = {silhouette_k}: the segments separate most cleanly "
                         f"(silhouette {best_sil:.3f}).", clear_silhouette)
    if rule == "calinski_harabasz" and total is not None and rows is not None:
        chosen = _best(ks, [signals[k]["calinski_harabasz"] for k in ks], highest=True)
        return selection(chosen, rule, "highest Calinski-Harabasz index",
                         f"K = {chosen}: the highest ratio of between- to within-segment spread.",
                         clear_silhouette)
    if rule == "relative_drop" and any(signals[k]["wssse_cut"] is not None for k in ks):
        chosen = _best(ks, [signals[k]["wssse_cut"] for k in ks], highest=True)
        return selection(chosen, rule, "largest relative WSSSE drop",
                         f"K = {chosen}: adding its last segment cut the WSSSE by the largest share.",
                         clear_silhouette)
    if rule == "kneedle" and len(ks) >= 3:
        chosen = kneedle(ks, wssse)
        return selection(chosen, rule, "Kneedle on WSSSE",
                         f"K = {chosen}: the point of the elbow curve farthest below its chord.",
                         clear_silhouette)
    return _elbow(ks, wssse, signals, silhouette_k, rule, clear_silhouette, selection)


def _auto(ks, signals, silhouette_k, best_sil, selection) -> KSelection:
    """The default rule (see the module doc)."""
    if best_sil is None:  # no silhouette (e.g. every K has one cluster): the elbow alone
        return _elbow(ks, [signals[k]["wssse"] for k in ks], signals, None, "auto", False, selection)
    candidates = []
    for k in ks:
        s = signals[k]["silhouette"]
        if s is None or s < best_sil - SILHOUETTE_MARGIN:
            continue
        into, beyond = signals[k]["log_wssse_drop"], signals.get(k + 1, {}).get("log_wssse_drop")
        confirmed = into is not None and beyond is not None and into >= ELBOW_RATIO * max(beyond, 1e-12)
        candidates.append({
            "k": k, "silhouette": s, "wssse_cut": signals[k]["wssse_cut"],
            "next_wssse_cut": signals.get(k + 1, {}).get("wssse_cut"), "elbow_confirms": confirmed,
        })
    confirmed = [c for c in candidates if c["elbow_confirms"]]
    clear = best_sil >= STRONG_SILHOUETTE or (best_sil >= CLEAR_SILHOUETTE and bool(confirmed))
    if not clear:  # no natural grouping to find: segment where the elbow bends, as the seeds do
        wssse = [signals[k]["wssse"] for k in ks]
        elbow = _elbow(ks, wssse, signals, silhouette_k, "auto", False, selection)
        summary = (f"No clear natural grouping (best silhouette {best_sil:.3f}); K = {elbow.chosen_k} chosen by "
                   f"the {elbow.decided_by}.")
        return selection(elbow.chosen_k, "auto", f"{elbow.decided_by} (no clear grouping)", summary, False, candidates)
    pick = max(confirmed, key=lambda c: c["k"], default=None)
    if pick is not None and pick["k"] > silhouette_k:
        k = pick["k"]
        summary = (
            f"K = {k}: the most segments that still separate customers almost as cleanly as the best "
            f"(silhouette {pick['silhouette']:.3f}; best {best_sil:.3f} at K = {silhouette_k}), and the elbow "
            f"confirms it: going from {k - 1} to {k} segments cut the spread within segments (WSSSE) by "
            f"{pick['wssse_cut']:.0%}, one more segment would cut it by only {pick['next_wssse_cut']:.0%}."
        )
        return selection(k, "auto", "silhouette checked by the elbow", summary, True, candidates)
    k = silhouette_k
    summary = f"K = {k}: the segments separate customers most cleanly there (silhouette {best_sil:.3f})"
    if pick is not None:  # the best silhouette is itself confirmed
        summary += (f", and the elbow confirms it: going from {k - 1} to {k} segments cut the spread within "
                    f"segments (WSSSE) by {pick['wssse_cut']:.0%}, one more segment would cut it by only "
                    f"{pick['next_wssse_cut']:.0%}.")
    else:
        summary += "; no larger K near it is confirmed by the elbow."
    return selection(k, "auto", "silhouette checked by the elbow", summary, True, candidates)


def _elbow(ks, wssse, signals, silhouette_k, rule, clear, selection) -> KSelection:
    """The two-line fit (L-method); with fewer than MIN_POINTS_FOR_TWO_LINES K values the
    highest silhouette decides, and with no silhouette either the smallest K."""
    if len(ks) >= MIN_POINTS_FOR_TWO_LINES:
        errors = two_line_fit_errors(ks, wssse)
        for k, e in errors.items():
            signals[k]["two_line_fit_error"] = e
        chosen = min(errors, key=lambda k: (errors[k], k))
        return selection(chosen, rule, "two-line fit (L-method) on WSSSE",
                         f"K = {chosen}: where a steep and a flat straight line through the elbow curve meet.",
                         clear)
    if silhouette_k is not None:
        return selection(silhouette_k, rule, f"highest silhouette (fewer than {MIN_POINTS_FOR_TWO_LINES} K values)",
                         f"K = {silhouette_k}: the highest silhouette; the K range is too short for the elbow.",
                         clear)
    return selection(ks[0], rule, "smallest K (no signal to choose by)",
                     f"K = {ks[0]}: the K range gave nothing to choose by.", False)


def _signals(ks, wssse, silhouette, total, rows, bic) -> dict[int, dict[str, Optional[float]]]:
    """Per K: wssse, silhouette, the WSSSE cut from K - 1 (share and log), Calinski-Harabasz, bic."""
    previous = {k: w for k, w in zip(ks[1:], wssse[:-1])}
    if total is not None and ks[0] == 2:
        previous[2] = total
    signals = {}
    for k, w, s in zip(ks, wssse, silhouette):
        before = previous.get(k)
        usable = before is not None and before > 0 and w > 0
        signals[k] = {
            "wssse": w,
            "silhouette": s,
            "wssse_cut": 1 - w / before if usable else None,
            "log_wssse_drop": math.log(before / w) if usable else None,
            "calinski_harabasz": (
                ((total - w) / (k - 1)) / (w / (rows - k)) if total is not None and rows and rows > k and w > 0
                else None
            ),
        }
    if bic is not None:
        for k, b in zip(ks, bic):
            signals[k]["bic"] = b
    return signals


def kneedle(ks: list[int], wssse: list[float]) -> int:
    """Kneedle (Satopaa et al. 2011) on a falling convex curve: the K farthest below the chord."""
    span = (max(wssse) - min(wssse)) or 1.0
    gaps = [(1 - (w - min(wssse)) / span) - (k - ks[0]) / (ks[-1] - ks[0]) for k, w in zip(ks, wssse)]
    return ks[max(range(len(ks)), key=lambda i: (gaps[i], -i))]


def two_line_fit_errors(ks: list[int], values: list[float]) -> dict[int, float]:
    """For each interior K: the point-weighted RMSE of two least-squares lines cornered at K."""
    n = len(ks)
    scale = max(abs(v) for v in values) or 1.0  # errors relative to the curve's height
    y = [v / scale for v in values]
    errors = {}
    for i in range(1, n - 1):
        left_x, left_y = ks[: i + 1], y[: i + 1]
        right_x, right_y = ks[i:], y[i:]
        left, right = len(left_x), len(right_x)
        errors[ks[i]] = (left * _line_rmse(left_x, left_y) + right * _line_rmse(right_x, right_y)) / (
            left + right
        )
    return errors


def _line_rmse(xs: list[int], ys: list[float]) -> float:
    n = len(xs)
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (yv - mean_y) for x, yv in zip(xs, ys)) / sxx if sxx else 0.0
    residuals = [yv - (mean_y + slope * (x - mean_x)) for x, yv in zip(xs, ys)]
    return (sum(r * r for r in residuals) / n) ** 0.5


def _best(ks: list[int], values: list[Optional[float]], highest: bool) -> Optional[int]:
    """The K of the highest (or lowest) value; ties go to the smaller K; None without values."""
    scored = [(v if highest else -v, -k) for k, v in zip(ks, values) if v is not None]
    return -max(scored)[1] if scored else None
