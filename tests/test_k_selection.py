"""The K rules: the elbow (two-line fit) on curves with a known elbow, and the default rule
(silhouette candidates confirmed by the elbow) on the signals of real sweeps of planted tables."""

import numpy as np
import pytest

from segmentation.k_selection import RULES, select_k, two_line_fit_errors
from segmentation.planted import suite
from segmentation.task_kmeans import best_run, silhouette


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
    assert (chosen.chosen_k, chosen.decided_by, chosen.silhouette_k) == (4, "fixed", 3)
    short = select_k([3, 4], [10.0, 5.0], [0.4, 0.6], rule="elbow")
    assert short.chosen_k == 4 and short.decided_by.startswith("highest silhouette")
    # A real curve of K = 2..5 on four planted segments: too few points for two lines.
    few = select_k([2, 3, 4, 5], [43141.1, 16364.8, 5197.8, 4153.3], [0.63, 0.82, 0.91, 0.83], rule="elbow")
    assert few.chosen_k == 4 and few.decided_by == "highest silhouette (fewer than 6 K values)"
    # The default rule on the same four K: 4 has the best silhouette and the elbow confirms it.
    auto = select_k([2, 3, 4, 5], [43141.1, 16364.8, 5197.8, 4153.3], [0.63, 0.82, 0.91, 0.83])
    assert auto.chosen_k == 4 and auto.decided_by == "silhouette checked by the elbow"


def test_errors_cover_every_interior_k_and_report_agreement():
    ks = list(range(2, 9))
    errors = two_line_fit_errors(ks, straight_then_flat(ks, 5))
    assert list(errors) == [3, 4, 5, 6, 7]
    selection = select_k(ks, straight_then_flat(ks, 5), [0.1, 0.2, 0.3, 0.9, 0.5, 0.4, 0.3], rule="elbow")
    summary = selection.to_dict()
    assert summary["chosen_k"] == 5 and summary["silhouette_best_k"] == 5
    assert summary["silhouette_agrees"] is True


def test_a_mixture_takes_the_k_with_the_lowest_bic_and_fixed_still_wins():
    ks, wssse = [2, 3, 4, 5], [40.0, 20.0, 15.0, 14.0]
    chosen = select_k(ks, wssse, bic=[900.0, 850.0, 870.0, 880.0])
    assert (chosen.chosen_k, chosen.decided_by) == (3, "lowest BIC (Gaussian mixture log-likelihood)")
    assert {k: v["bic"] for k, v in chosen.to_dict()["signals"].items()} == {
        "2": 900.0, "3": 850.0, "4": 870.0, "5": 880.0}
    assert select_k(ks, wssse, bic=[900.0, 850.0, 870.0, 880.0], fixed=5).chosen_k == 5


def sweep_signals(x, ks, seeds=6, silhouette_rows=3000):
    """What the job's tasks engine computes per K on scaled rows: best-of-seeds WSSSE and the silhouette."""
    rng = np.random.default_rng(0)
    some = rng.choice(len(x), min(silhouette_rows, len(x)), replace=False)
    wssse, silhouettes = [], []
    for k in ks:
        run = best_run(x, k, [11 + 1009 * r + k for r in range(seeds)], 40, 1e-4)
        wssse.append(run.wssse)
        silhouettes.append(silhouette(x[some], run.labels[some], k))
    return wssse, silhouettes


def scaled(frame):
    x = frame.to_numpy(float)
    return (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)


def choose(x, ks=range(2, 11), **kwargs):
    ks = list(ks)
    wssse, silhouettes = sweep_signals(x, ks)
    return select_k(ks, wssse, silhouettes, total=(len(x) - 1) * x.shape[1], rows=len(x), **kwargs)


def test_the_issue_curve_five_tight_groups_gives_five_where_the_elbow_said_four():
    # The job's own elbow on five clearly different behaviours (issue 19): WSSSE per row and silhouette.
    ks, rows = list(range(2, 11)), 10_000
    per_row = [1.569, 0.685, 0.196, 0.062, 0.056, 0.051, 0.045, 0.039, 0.033]
    silhouettes = [0.729, 0.824, 0.906, 0.946, 0.862, 0.80, 0.76, 0.72, 0.70]
    wssse = [w * rows for w in per_row]
    assert select_k(ks, wssse, silhouettes, rule="elbow").chosen_k == 4
    chosen = select_k(ks, wssse, silhouettes, total=4.0 * (rows - 1), rows=rows)
    assert (chosen.chosen_k, chosen.decided_by, chosen.clear_structure) == (5, "silhouette checked by the elbow", True)
    assert chosen.summary.startswith("K = 5: ") and "from 4 to 5 segments" in chosen.summary
    manifest = chosen.to_dict()
    assert [c["k"] for c in manifest["candidates"]] == [4, 5]
    assert [c["elbow_confirms"] for c in manifest["candidates"]] == [False, True]
    assert sorted(manifest["signals"]["5"]) == [
        "calinski_harabasz", "log_wssse_drop", "silhouette", "wssse", "wssse_cut"]
    assert manifest["signals"]["5"]["wssse_cut"] == pytest.approx(1 - 0.062 / 0.196)
    assert manifest["rule"] == "auto" and manifest["thresholds"]["elbow_ratio"] == 1.2


@pytest.mark.parametrize("index", range(0, 32, 3))
def test_the_default_rule_finds_the_planted_k_of_separated_tables(index):
    # Real sweeps (the tasks engine's numpy k-means and silhouette) of tables from the K suite:
    # K = 2..9, 2 to 8 features on unrelated scales, unequal sizes and spreads.
    table = suite(rows=4000)[index]
    assert table.kind == "separated"
    chosen = choose(scaled(table.customers[table.features]))
    assert chosen.chosen_k == table.k, chosen.summary
    assert chosen.clear_structure is True


@pytest.mark.parametrize("shape", ["gaussian", "uniform"])
def test_no_group_structure_still_segments_and_says_so(shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 4)) if shape == "gaussian" else rng.uniform(size=(3000, 3))
    chosen = choose((x - x.mean(axis=0)) / x.std(axis=0, ddof=1))
    assert chosen.clear_structure is False
    assert chosen.summary.startswith("No clear natural grouping (best silhouette 0.")
    assert f"K = {chosen.chosen_k} chosen by the two-line fit (L-method) on WSSSE" in chosen.summary
    assert chosen.decided_by == "two-line fit (L-method) on WSSSE (no clear grouping)"
    assert chosen.chosen_k == choose((x - x.mean(axis=0)) / x.std(axis=0, ddof=1), rule="elbow").chosen_k


def test_every_rule_is_selectable_and_an_unknown_one_is_refused():
    ks = list(range(2, 11))
    curve = straight_then_flat(ks, 5)
    silhouettes = [0.3, 0.4, 0.5, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3]
    for rule in RULES:
        chosen = select_k(ks, curve, silhouettes, total=curve[0] * 2, rows=1000, rule=rule)
        assert chosen.rule == rule and chosen.chosen_k in ks and chosen.summary.startswith(f"K = {chosen.chosen_k}")
    assert select_k(ks, curve, silhouettes, rule="silhouette").chosen_k == 5
    with pytest.raises(ValueError, match="unknown K rule 'best'"):
        select_k(ks, curve, rule="best")


def test_total_sum_of_squares_is_what_the_scaler_implies():
    from segmentation.features import Scaling

    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 3)) * [1.0, 20.0, 0.1] + [5, -3, 100]
    z = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    scaling = Scaling(("a", "b", "c"), tuple(x.mean(axis=0)), tuple(x.std(axis=0, ddof=1)))
    assert scaling.total_sum_of_squares(500) == pytest.approx(float(((z - z.mean(axis=0)) ** 2).sum()))
    assert Scaling(("a", "b"), (1.0, 2.0), (3.0, 0.0)).total_sum_of_squares(10) == 9.0
