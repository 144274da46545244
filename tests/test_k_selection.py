"""The K rule on curves with a known elbow, including straight-down-then-flat ones."""

import pytest

from segmentation.k_selection import select_k, two_line_fit_errors


def straight_then_flat(ks, elbow, drop=300.0, tail=8.0):
    """Falls by the same step down to the elbow, then almost flat."""
    return [100 + drop * (elbow - k) if k <= elbow else 100 - tail * (k - elbow) for k in ks]


@pytest.mark.parametrize(
    "elbow, k_range",
    [(e, r) for r in [(2, 10), (2, 12), (3, 11)] for e in range(3, 9) if r[0] < e < r[1]],
)
def test_finds_the_corner_of_straight_then_flat_curves(elbow, k_range):
    ks = list(range(k_range[0], k_range[1] + 1))
    assert select_k(ks, straight_then_flat(ks, elbow)).chosen_k == elbow


@pytest.mark.parametrize("elbow", [4, 5, 6, 7])
@pytest.mark.parametrize("pattern", [(1.0, 1.2, 0.8), (0.8, 1.0, 1.25), (1.3, 0.9, 1.0), (0.9, 0.9, 1.4)])
def test_almost_straight_falls_with_uneven_steps_and_a_decaying_tail(elbow, pattern):
    ks = list(range(2, 11))
    curve, value = [], 2000.0
    for k in ks:
        curve.append(value)
        if k < elbow:
            value -= 250.0 * pattern[k % 3]  # steps of uneven size: almost, not exactly, straight
        else:
            value *= 0.93  # the flat part still falls a little, ever less
    assert select_k(ks, curve).chosen_k == elbow


def test_the_mall_customers_curve_gives_five():
    # scikit-learn's best-of-10 inertia on the standardized income and spending score, K = 2..10.
    ks = list(range(2, 11))
    inertia = [269.69, 157.70, 108.92, 65.57, 55.06, 44.86, 37.23, 32.39, 29.98]
    assert select_k(ks, inertia).chosen_k == 5


def test_scale_does_not_change_the_choice():
    ks = list(range(2, 11))
    curve = straight_then_flat(ks, 6)
    assert select_k(ks, curve).chosen_k == select_k(ks, [v * 1e6 for v in curve]).chosen_k == 6


def test_noise_on_the_flat_part_does_not_move_the_choice():
    ks = list(range(2, 11))
    curve = straight_then_flat(ks, 4)
    curve[6] += 12  # a bad local minimum: the curve is not even monotone here
    assert select_k(ks, curve).chosen_k == 4


def test_fixed_k_and_short_ranges():
    ks = [2, 3, 4]
    chosen = select_k(ks, [10.0, 5.0, 4.0], [0.5, 0.7, 0.6], fixed=4)
    assert (chosen.chosen_k, chosen.method, chosen.silhouette_k) == (4, "fixed", 3)
    short = select_k([3, 4], [10.0, 5.0], [0.4, 0.6])
    assert short.chosen_k == 4 and short.method.startswith("silhouette")
    # A real curve of K = 2..5 on four planted segments: too few points for two lines.
    few = select_k([2, 3, 4, 5], [43141.1, 16364.8, 5197.8, 4153.3], [0.63, 0.82, 0.91, 0.83])
    assert few.chosen_k == 4 and few.method == "silhouette (fewer than 6 K values)"


def test_errors_cover_every_interior_k_and_report_agreement():
    ks = list(range(2, 9))
    errors = two_line_fit_errors(ks, straight_then_flat(ks, 5))
    assert list(errors) == [3, 4, 5, 6, 7]
    selection = select_k(ks, straight_then_flat(ks, 5), [0.1, 0.2, 0.3, 0.9, 0.5, 0.4, 0.3])
    summary = selection.to_dict()
    assert summary["chosen_k"] == 5 and summary["silhouette_best_k"] == 5
    assert summary["silhouette_agrees"] is True


def test_a_mixture_takes_the_k_with_the_lowest_bic_and_fixed_still_wins():
    ks, wssse = [2, 3, 4, 5], [40.0, 20.0, 15.0, 14.0]
    chosen = select_k(ks, wssse, bic=[900.0, 850.0, 870.0, 880.0])
    assert (chosen.chosen_k, chosen.method) == (3, "lowest BIC (Gaussian mixture log-likelihood)")
    assert chosen.to_dict()["bic"] == {"2": 900.0, "3": 850.0, "4": 870.0, "5": 880.0}
    assert select_k(ks, wssse, bic=[900.0, 850.0, 870.0, 880.0], fixed=5).chosen_k == 5
