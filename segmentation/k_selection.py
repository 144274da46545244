"""Stage 5, select K: the elbow of the WSSSE curve by a two-line fit (the L-method).

Why this rule: the elbow is where the curve stops falling steeply and starts
falling slowly, i.e. where two straight lines, one through the steep part and one
through the flat part, meet. For every candidate K the rule fits a least-squares
line to the points K_min..K and another to K..K_max (both include K, the corner),
and picks the K whose two fits leave the smallest error, each side weighted by
its number of points (Salvador & Chan, "Determining the number of clusters/segments
in hierarchical clustering/segmentation algorithms", 2004).

Unlike Kneedle, which measures the distance to the chord between the end points,
it does not favour a point before the corner when the curve falls almost straight
down to the elbow and then flattens, and it has no sensitivity parameter.

The silhouette of each K is reported beside it as a second opinion. With fewer than
six K values the two lines rest on too few points (a steep part that is itself
curved pulls the corner one K early), so there the highest silhouette decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


MIN_POINTS_FOR_TWO_LINES = 6


@dataclass(frozen=True)
class KSelection:
    chosen_k: int
    method: str
    # candidate K -> weighted error of the two-line fit with its corner at K
    scores: dict[int, float] = field(default_factory=dict)
    silhouette_k: Optional[int] = None

    def to_dict(self) -> dict:
        return {
            "chosen_k": self.chosen_k,
            "method": self.method,
            ("bic" if self.method.startswith("lowest BIC") else "two_line_fit_error"): {
                str(k): v for k, v in self.scores.items()
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
) -> KSelection:
    """Chooses K from the elbow curve; ``fixed`` overrides the rule.

    With ``bic`` (a Gaussian mixture's Bayesian information criterion per K) the lowest BIC
    decides instead: the mixture is a likelihood model, and BIC weighs its fit against its
    number of parameters."""
    if len(ks) != len(wssse) or not ks:
        raise ValueError("ks and wssse must be non-empty and of equal length")
    silhouette_k = _best_silhouette(ks, silhouette)
    if fixed is not None:
        return KSelection(fixed, "fixed", {}, silhouette_k)
    if bic is not None:
        scores = dict(zip(ks, bic))
        chosen = min(scores, key=lambda k: (scores[k], k))
        return KSelection(chosen, "lowest BIC (Gaussian mixture log-likelihood)", scores, silhouette_k)
    if len(ks) < MIN_POINTS_FOR_TWO_LINES:
        chosen = silhouette_k if silhouette_k is not None else ks[0]
        return KSelection(
            chosen, f"silhouette (fewer than {MIN_POINTS_FOR_TWO_LINES} K values)", {}, silhouette_k
        )
    scores = two_line_fit_errors(ks, wssse)
    chosen = min(scores, key=lambda k: (scores[k], k))
    return KSelection(chosen, "two-line fit (L-method) on WSSSE", scores, silhouette_k)


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


def _best_silhouette(ks: list[int], silhouette: Optional[list[Optional[float]]]) -> Optional[int]:
    if not silhouette:
        return None
    scored = [(s, -k) for k, s in zip(ks, silhouette) if s is not None]
    return -max(scored)[1] if scored else None
