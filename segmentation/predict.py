"""Stage 1c, predictions (``--predict-days H``, transactions input): what each customer does next.

For every customer, as of the reference date, over the next H days: ``p_purchase`` (the
probability of at least one purchase), ``expected_purchases`` (purchase days),
``expected_spend`` and ``churn_risk`` (``high`` when ``p_purchase`` is below
``predict.churn_high_below``, ``medium`` below ``predict.churn_medium_below``, else ``low``).

A *purchase* is a day with at least one positive amount (as the field's models count
repeat purchases: per period, here a day), and its spend is the sum of those amounts. Two
models, and the backtest that chooses between them:

- ``bgnbd``: BG/NBD for purchases with Gamma-Gamma for spend per purchase (Fader, Hardie
  and Lee). Both are fitted by maximum likelihood with scipy on the driver, over the
  per-customer sufficient statistics (repeat purchases x, recency t_x, age T, mean repeat
  spend) of a bounded random sample of customers (``predict.fit_customers``, 200,000 by
  default): four numbers a customer, 6.4 MB, and parameter estimates whose sampling error is
  far below the model's own misfit. Applied on the executors (``mapInPandas``, scipy's
  hyp2f1), so no customer row passes through the driver.
- ``gbt``: spark.ml gradient-boosted trees on RFM features at several windows (purchase days
  and spend in the last 30 to 365 days, recency, age, inter-purchase time, trend), trained on
  the features as of H days before the reference date and labelled by what each customer
  did in the last H days, then applied to the features as of the reference date: a
  classifier for ``p_purchase`` and a regressor for ``expected_purchases``; spend per
  purchase from Gamma-Gamma. It needs three horizons of history; with less, it is skipped and
  the manifest says why.

The backtest holds out the last H days: both models are fitted on what came before (gbt one
horizon earlier still) and scored on the customers known at the cutoff, beside two naive
baselines (``recency``: the most recent buyers first; ``past_rate``: each customer's own past
rate of purchase days and spend). The chosen model wins at least two of: AUC of
``p_purchase``, the share of held-out spend captured by the top 10% by ``expected_spend``,
and the mean relative miss of total purchases and total spend (a tie goes to bgnbd). Rank
measures come from a bounded sample (``predict.eval_customers``), totals from every customer.

Seasons: BG/NBD has none, so on a seasonal business its totals miss by the season. With at
least a year and three horizons of history (and ``predict.model`` auto or bgnbd_seasonal), the
backtest also scores ``bgnbd_seasonal``: bgnbd, fitted on the history a year before the cutoff,
earned factors actual / predicted of total purchases and spend over the same H days of the
calendar. BG/NBD's customers drop out at a purchase, not with the days, so a season that scales
the rate of purchase is the same process on a faster or slower clock: the purchases factor
gives the days that clock runs over the H days (``equivalent_horizon``), and the variant is
bgnbd over those days (its ``p_purchase`` and expected purchases; its spend per purchase times
the spend factor over the purchases factor). It is chosen over bgnbd only when it cuts the mean
total miss by more than the total-error margin, over the held-out H days and up to three
earlier windows of H days a quarter of a year apart (``earlier_windows``: each with its own two fits, as far as
the history allows), so on the seasons of the whole year rather than on one. Its forecast then
uses the factors of the H days from a year before the reference date. It assumes the season
repeats from a year earlier, and moves every customer's rate alike: a season that moved,
or a one-off event a year before the forecast's H days, goes unseen. Its dates join the stage's
one pass over the purchases only for histories this long (``season_dates``).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.errors import InputError, first_line
from segmentation.rfm import AMOUNT, DATE
from segmentation.sql import column, local_table

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("p_purchase", "expected_purchases", "expected_spend", "churn_risk")
MODELS = ("bgnbd", "gbt")
# bgnbd with its totals scaled by what bgnbd missed over the same H days a year earlier.
SEASONAL = "bgnbd_seasonal"
YEAR_DAYS = 365
# The seasonal factors are judged on the held-out H days and on up to three windows of H days
# before them, a quarter of a year apart, so on every season of the year (earlier_windows).
SEASON_WINDOWS = 4
BASELINES = ("recency", "past_rate")
CHURN_BANDS = ("high", "medium", "low")
GAIN_POINTS = 20  # the gain curve: the share of spend captured by the top 5%, 10%, ..., 100%
DECILES = 10
# What each customer-and-date view holds (``view_as_of``); GBT_FEATURES are the trees' inputs.
GBT_FEATURES = ("x", "tx", "age", "recency", "days", "spend", "mean_spend", "gap",
                "n30", "n90", "n180", "n365", "s90", "s365", "trend")
WINDOWS = (30, 90, 180, 365)
# How far the trees must be ahead of bgnbd on a backtest measure to win it (choose_model):
# AUC and top-decile share in points, total error as the mean relative miss of purchases and spend.
CHOICE_MARGINS = {"AUC": 0.01, "top-decile spend share": 0.01, "total error": 0.05}
# A model fitted a horizon or a year back needs at least this many customers known then, and this
# many of them with the behaviour it learns from (active after its cutoff, or repeat buyers).
FIT_MINIMUM = (50, 10)
# equivalent_horizon sums BG/NBD's expectations of at most this many customers of the fit sample,
# and looks no further than this many horizons.
EQUIVALENT_ROWS = 20_000
EQUIVALENT_LIMIT = 64
# The trees' training rows per cached partition (fit_trees).
TREE_ROWS_PER_PARTITION = 50_000
EVAL_SCHEMA = (
    "model STRING, chosen BOOLEAN, cutoff DATE, horizon_days INT, customers LONG, "
    "evaluated_customers LONG, auc DOUBLE, top_decile_spend_share DOUBLE, "
    "predicted_purchases DOUBLE, actual_purchases DOUBLE, purchases_error DOUBLE, "
    "predicted_spend DOUBLE, actual_spend DOUBLE, spend_error DOUBLE, "
    "calibration_predicted ARRAY<DOUBLE>, calibration_actual ARRAY<DOUBLE>, gain ARRAY<DOUBLE>"
)
PARAMETERS = "parameters"


@dataclass
class PredictionModel:
    """What scoring needs: the chosen model, its parameters, and for gbt the trees' folder."""

    model: str
    horizon_days: int
    bgnbd: dict[str, float]
    gamma_gamma: dict[str, float]
    churn: tuple[float, float]
    trees: dict[str, Any] = field(default_factory=dict)  # gbt: "classifier", "regressor" (fitted models)
    seasonal: Optional[dict[str, Any]] = None  # bgnbd_seasonal: its factors (seasonal_factors)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "horizon_days": self.horizon_days, "bgnbd": self.bgnbd,
                "gamma_gamma": self.gamma_gamma, "churn_high_below": self.churn[0],
                "churn_medium_below": self.churn[1], "seasonal": self.seasonal}

    def save(self, spark: SparkSession, path: str) -> None:
        """``path/parameters`` (one JSON line, written by Spark: any file system) and, for gbt,
        ``path/classifier`` and ``path/regressor`` (spark.ml models)."""
        for name, tree in self.trees.items():
            tree.write().save(f"{path}/{name}")
        text = json.dumps(self.to_dict(), sort_keys=True)
        local_table(spark, [(text,)], "value STRING").coalesce(1).write.text(f"{path}/{PARAMETERS}")

    @classmethod
    def load(cls, spark: SparkSession, path: str) -> "PredictionModel":
        data = json.loads(spark.read.text(f"{path}/{PARAMETERS}").first()[0])
        trees = {}
        if data["model"] == "gbt":
            from pyspark.ml.classification import GBTClassificationModel
            from pyspark.ml.regression import GBTRegressionModel

            trees = {"classifier": GBTClassificationModel.load(f"{path}/classifier"),
                     "regressor": GBTRegressionModel.load(f"{path}/regressor")}
        return cls(data["model"], int(data["horizon_days"]), data["bgnbd"], data["gamma_gamma"],
                   (data["churn_high_below"], data["churn_medium_below"]), trees, data.get("seasonal"))


@dataclass
class Predictions:
    customers: DataFrame  # the id and PREDICTION_COLUMNS, one row per customer with a purchase
    evaluation: list[dict[str, Any]]  # the predictions_eval rows
    facts: dict[str, Any]  # the manifest's "predictions"
    model: PredictionModel
    cache: DataFrame  # the per-customer statistics behind them; the caller unpersists it


def predict_with_saved(purchases: DataFrame, id_col: str, reference: datetime.date, path: str,
                       spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """The saved model at ``path`` (a run's ``prediction_model/``) applied as of ``reference``: the
    id and PREDICTION_COLUMNS per customer, and the cache behind them (the caller unpersists it)."""
    try:
        model = PredictionModel.load(spark, path)
    except Exception as exc:  # noqa: BLE001 - any load failure means no usable model there
        raise InputError(f"cannot load a prediction model from {path}: {first_line(exc)}") from None
    if model.seasonal and reference.isoformat() != model.seasonal["forecast_from"]:
        log.warning("the prediction model's seasonal factors are those of the %d days from %s; applied from %s",
                    model.horizon_days, model.seasonal["forecast_from"], reference)
    stats = customer_stats(purchases, id_col, {"ref": reference}, model.horizon_days).cache()
    return apply_model(view_as_of(stats, "ref", with_actuals=False), model, id_col), stats


# --- the stage -----------------------------------------------------------------------------


def predict_customers(spark: SparkSession, purchases: DataFrame, id_col: str, reference: datetime.date,
                      cfg, seed: int, first_purchase: Optional[datetime.date] = None) -> Predictions:
    """Predictions for every customer with a purchase in ``purchases`` (``rfm.purchases``).
    ``first_purchase``, the earliest purchase's date, gives the history's span before the pass over
    the purchases, so the pass aggregates the seasonal variant's dates only where the history can
    backtest it (the rfm stage knows the date; else one more small pass finds it)."""
    horizon = cfg.days
    if first_purchase is None:
        first_purchase = purchases.agg(F.min(DATE)).first()[0]
    span = (reference - first_purchase).days if first_purchase else 0  # the history up to the reference date
    cutoff = reference - datetime.timedelta(days=horizon)
    train_cutoff = cutoff - datetime.timedelta(days=horizon)
    dates = {"ref": reference, "cut": cutoff, "train": train_cutoff}
    seasonal_dates = season_dates(reference, horizon, span) if _considered(cfg, SEASONAL) else {}
    stats = customer_stats(purchases, id_col, dates, horizon, seasonal_dates).cache()
    summary = stats.agg(
        F.count(F.lit(1)).alias("customers"),
        F.count(F.when(F.col("days_ref") > 1, 1)).alias("repeaters"),
        F.count(F.when(F.col("days_cut") > 0, 1)).alias("known_cut"),
        F.count(F.when(F.col("days_train") > 0, 1)).alias("known_train"),
        F.count(F.when(F.col("y_count_train") > 0, 1)).alias("active_train"),
        *[F.count(F.when(F.col(f"days_{tag}") > 0, 1)).alias(f"known_{tag}") for tag in seasonal_dates],
        *[F.count(F.when(F.col(f"days_{tag}") > 1, 1)).alias(f"repeaters_{tag}") for tag in seasonal_dates],
    ).first()
    try:
        _check_history(summary, span, horizon)
    except InputError:
        stats.unpersist()
        raise
    facts: dict[str, Any] = {
        "horizon_days": horizon, "reference_date": reference.isoformat(), "cutoff": cutoff.isoformat(),
        "history_days": span, "customers": int(summary["customers"]),
        "customers_at_cutoff": int(summary["known_cut"]),
    }

    # The backtest: fitted on what came before the cutoff, scored on the held-out H days.
    backtest = view_as_of(stats, "cut", with_actuals=True)
    bg_cut = fit_bgnbd(_fit_sample(backtest, int(summary["known_cut"]), cfg.fit_customers, seed))
    scored = with_bgnbd(backtest, bg_cut, horizon, "bgnbd_")
    scored = with_baselines(scored, horizon)
    supervised = _supervised_reason(span, horizon, summary, cfg)
    trees_cut = None
    if supervised is None:
        train = view_as_of(stats, "train", with_actuals=True)
        trees_cut = fit_trees(train, int(summary["known_train"]), cfg, seed)
        scored = with_trees(scored, trees_cut, bg_cut["gamma_gamma"], "gbt_")
    facts["supervised"] = "used" if supervised is None else f"skipped: {supervised}"
    models = [m for m in MODELS if m != "gbt" or supervised is None]
    seasonal_skipped = _seasonal_reason(span, horizon, summary, cfg)
    seasonal: dict[str, Any] = {"backtest": None, "forecast": None, "earlier_windows": []}
    if seasonal_skipped is None:
        seasonal["backtest"] = seasonal_factors(stats, "year_cut", seasonal_dates["year_cut"],
                                                int(summary["known_year_cut"]), horizon, cfg, seed)
        scored = with_seasonal(scored, bg_cut, seasonal["backtest"], horizon, f"{SEASONAL}_")
        models.append(SEASONAL)
        seasonal["earlier_windows"] = earlier_windows(stats, summary, seasonal_dates, horizon, cfg, seed)
    evaluation = evaluate(scored, models, cutoff, horizon, int(summary["known_cut"]), cfg.eval_customers, seed)
    chosen, decided_by = choose_model(evaluation, cfg.model, seasonal["earlier_windows"])
    if not _considered(cfg, chosen):  # forced, and the history could not backtest it
        log.warning("predictions: %s, because %s", decided_by,
                    {"gbt": supervised, SEASONAL: seasonal_skipped}[cfg.model])
    for row in evaluation:
        row["chosen"] = row["model"] == chosen
    facts.update({"model": chosen, "decided_by": decided_by})

    # The predictions: the chosen model fitted on all the history, applied as of the reference date.
    now = view_as_of(stats, "ref", with_actuals=False)
    bg_ref = fit_bgnbd(_fit_sample(now, int(summary["customers"]), cfg.fit_customers, seed))
    trees: dict[str, Any] = {}
    if chosen == "gbt":
        train = view_as_of(stats, "cut", with_actuals=True)  # features at the cutoff, labelled by the last H days
        trees = fit_trees(train, int(summary["known_cut"]), cfg, seed)
    if chosen == SEASONAL:  # the same H days of the calendar a year before the reference date
        seasonal["forecast"] = seasonal_factors(stats, "year_ref", seasonal_dates["year_ref"],
                                                int(summary["known_year_ref"]), horizon, cfg, seed)
    model = PredictionModel(chosen, horizon, bg_ref["bgnbd"], bg_ref["gamma_gamma"],
                            (cfg.churn_high_below, cfg.churn_medium_below), trees, seasonal["forecast"])
    status = "used" if chosen == SEASONAL else "backtested, not chosen"
    facts["seasonal"] = {"status": status if seasonal_skipped is None else f"skipped: {seasonal_skipped}", **seasonal}
    facts["parameters"] = {"bgnbd": bg_ref["bgnbd"], "gamma_gamma": bg_ref["gamma_gamma"]}
    facts["backtest"] = [{k: v for k, v in row.items() if not isinstance(v, list)} for row in evaluation]
    customers = apply_model(now, model, id_col)
    log.info("predictions: %s chosen (%s); %d customers", chosen, decided_by, summary["customers"])
    return Predictions(customers, evaluation, facts, model, stats)


def apply_model(view: DataFrame, model: PredictionModel, id_col: str) -> DataFrame:
    """The id and PREDICTION_COLUMNS for every customer of a ``view_as_of`` as of its date."""
    fitted = {"bgnbd": model.bgnbd, "gamma_gamma": model.gamma_gamma}
    if model.model == "gbt":
        scored = with_trees(view, model.trees, model.gamma_gamma, "m_")
    elif model.seasonal:
        scored = with_seasonal(view, fitted, model.seasonal, model.horizon_days, "m_")
    else:
        scored = with_bgnbd(view, fitted, model.horizon_days, "m_")
    p = F.col("m_p")
    high, medium = model.churn
    risk = F.when(p < high, "high").when(p < medium, "medium").otherwise("low")
    return scored.select(
        column(id_col),
        p.alias("p_purchase"),
        F.col("m_n").alias("expected_purchases"),
        F.col("m_s").alias("expected_spend"),
        risk.alias("churn_risk"),
    )


def customer_stats(purchases: DataFrame, id_col: str, dates: dict[str, datetime.date], horizon: int,
                   bgnbd_dates: Optional[dict[str, datetime.date]] = None) -> DataFrame:
    """One row per customer: purchase-day statistics as of each of ``dates`` (days before it) and,
    for each date but "ref", what the customer did in the H days from it (``y_count_TAG``,
    ``y_spend_TAG``); for ``bgnbd_dates`` only what BG/NBD and Gamma-Gamma need and the H days
    from it. Two aggregations: per customer and day, then per customer."""
    days = purchases.groupBy(column(id_col), F.col(DATE).alias("day")).agg(F.sum(AMOUNT).alias("amount"))
    day, amount = F.col("day"), F.col("amount")
    aggregates: list[Column] = [
        F.min(day).alias("first"),
        F.min_by(amount, day).alias("first_amount"),
    ]
    for tag, as_of in dates.items():
        aggregates += _before(day, amount, tag, as_of)
        aggregates.append(F.count(F.when(_within(day, as_of, -180, -90), 1)).alias(f"n_prev90_{tag}"))
        for w in WINDOWS:
            aggregates.append(F.count(F.when(_within(day, as_of, -w, 0), 1)).alias(f"n{w}_{tag}"))
        for w in (90, 365):
            aggregates.append(
                F.coalesce(F.sum(F.when(_within(day, as_of, -w, 0), amount)), F.lit(0.0)).alias(f"s{w}_{tag}"))
        if tag != "ref":
            aggregates += _ahead(day, amount, tag, as_of, horizon)
    for tag, as_of in (bgnbd_dates or {}).items():
        aggregates += _before(day, amount, tag, as_of) + _ahead(day, amount, tag, as_of, horizon)
    stats = days.groupBy(column(id_col)).agg(*aggregates)
    every = {**dates, **(bgnbd_dates or {})}
    return stats.withColumns({f"asof_{tag}": F.lit(as_of) for tag, as_of in every.items()})


def _before(day: Column, amount: Column, tag: str, as_of: datetime.date) -> list[Column]:
    before = day < F.lit(as_of)
    return [
        F.max(F.when(before, day)).alias(f"last_{tag}"),
        F.count(F.when(before, 1)).alias(f"days_{tag}"),
        F.coalesce(F.sum(F.when(before, amount)), F.lit(0.0)).alias(f"spend_{tag}"),
    ]


def _ahead(day: Column, amount: Column, tag: str, as_of: datetime.date, horizon: int) -> list[Column]:
    ahead = _within(day, as_of, 0, horizon)
    return [
        F.count(F.when(ahead, 1)).alias(f"y_count_{tag}"),
        F.coalesce(F.sum(F.when(ahead, amount)), F.lit(0.0)).alias(f"y_spend_{tag}"),
    ]


def _within(day: Column, as_of: datetime.date, start: int, end: int) -> Column:
    return (day >= F.date_add(F.lit(as_of), start)) & (day < F.date_add(F.lit(as_of), end))


def view_as_of(stats: DataFrame, tag: str, with_actuals: bool, bgnbd_only: bool = False) -> DataFrame:
    """The customers known as of ``tag``'s date, with the model inputs under plain names (with
    ``bgnbd_only``, BG/NBD's and Gamma-Gamma's: x, tx, age, m)."""
    days = F.col(f"days_{tag}")
    x = days - 1
    tx = F.datediff(F.col(f"last_{tag}"), F.col("first"))
    age = F.datediff(F.col(f"asof_{tag}"), F.col("first"))
    spend = F.col(f"spend_{tag}")
    columns = {
        "x": x.cast("double"),
        "tx": tx.cast("double"),
        "age": age.cast("double"),
        "recency": F.datediff(F.col(f"asof_{tag}"), F.col(f"last_{tag}")).cast("double"),
        "days": days.cast("double"),
        "spend": spend,
        "mean_spend": spend / days,
        # Mean repeat spend (Gamma-Gamma's m), 0 without a repeat purchase.
        "m": F.when(x > 0, (spend - F.col("first_amount")) / x).otherwise(F.lit(0.0)),
        "gap": F.when(x > 0, tx / x).otherwise(age).cast("double"),
        **{f"n{w}": F.col(f"n{w}_{tag}").cast("double") for w in WINDOWS},
        "s90": F.col(f"s90_{tag}"),
        "s365": F.col(f"s365_{tag}"),
        "trend": (F.col(f"n90_{tag}") + 1) / (F.col(f"n_prev90_{tag}") + 1),
    }
    if bgnbd_only:
        columns = {name: columns[name] for name in ("x", "tx", "age", "m")}
    if with_actuals:
        columns["actual_purchases"] = F.col(f"y_count_{tag}").cast("double")
        columns["actual_spend"] = F.col(f"y_spend_{tag}")
    id_col = stats.columns[0]
    return stats.where(days > 0).select(column(id_col), *[c.alias(n) for n, c in columns.items()])


def _check_history(summary, span: int, horizon: int) -> None:
    if not summary["customers"]:
        raise InputError("no purchases to predict from: every amount is zero or negative")
    if 2 * horizon > span:
        raise InputError(
            f"--predict-days {horizon} is longer than half the history: the purchases span {span} days "
            f"up to the reference date, so the horizon can be at most {span // 2} days"
        )
    if not summary["repeaters"]:
        raise InputError(
            "no customer has bought on more than one day: predictions need repeat purchases to learn from"
        )


def _considered(cfg, model: str) -> bool:
    """Whether predict.model lets the backtest score ``model``: "auto", or ``model`` forced."""
    return cfg.model in ("auto", model)


def seasonal_history(horizon: int) -> int:
    """The days of history the seasonal factors' backtest needs: a fit two horizons long, a year
    before the cutoff, and the H days from it."""
    return YEAR_DAYS + 3 * horizon


def _supervised_reason(span: int, horizon: int, summary, cfg) -> Optional[str]:
    if not _considered(cfg, "gbt"):
        return f"predict.model is {cfg.model}"
    if span < 3 * horizon:
        return (f"the history ({span} days) is shorter than three horizons ({3 * horizon} days), "
                "which the supervised model's shifted window needs")
    if summary["known_train"] < FIT_MINIMUM[0] or summary["active_train"] < FIT_MINIMUM[1]:
        return (f"{summary['known_train']} customers before the training cutoff, {summary['active_train']} "
                "of them active after it: too few to train on")
    return None


def _seasonal_reason(span: int, horizon: int, summary, cfg) -> Optional[str]:
    if not _considered(cfg, SEASONAL):
        return f"predict.model is {cfg.model}"
    needed = seasonal_history(horizon)
    if span < needed:
        return (f"the history ({span} days) is shorter than a year and three horizons ({needed} days), which "
                "the seasonal factors' backtest needs (a fit two horizons long, a year before the cutoff)")
    if summary["known_year_cut"] < FIT_MINIMUM[0] or summary["repeaters_year_cut"] < FIT_MINIMUM[1]:
        return (f"{summary['known_year_cut']} customers a year before the cutoff, {summary['repeaters_year_cut']} "
                "of them repeat buyers: too few to fit on")
    return None


def _fit_sample(view: DataFrame, rows: int, bound: int, seed: int) -> DataFrame:
    return view if rows <= bound else view.sample(fraction=min(1.0, 1.05 * bound / rows), seed=seed).limit(bound)


# --- BG/NBD and Gamma-Gamma ------------------------------------------------------------------


def fit_bgnbd(rows: DataFrame) -> dict[str, dict[str, float]]:
    """BG/NBD's r, alpha, a, b and Gamma-Gamma's p, q, v, by maximum likelihood (scipy) on the driver."""
    return _fit_statistics(*sufficient_statistics(rows))


def sufficient_statistics(rows: DataFrame) -> tuple[np.ndarray, ...]:
    """x, tx, age and m of ``rows`` (a bounded sample), on the driver."""
    stats = rows.select("x", "tx", "age", "m").toPandas()
    return tuple(stats[c].to_numpy(dtype=float) for c in ("x", "tx", "age", "m"))


def _fit_statistics(x: np.ndarray, tx: np.ndarray, age: np.ndarray, m: np.ndarray) -> dict[str, dict[str, float]]:
    return {"bgnbd": bgnbd_parameters(x, tx, age), "gamma_gamma": gamma_gamma_parameters(x, m)}


def bgnbd_parameters(x: np.ndarray, tx: np.ndarray, age: np.ndarray) -> dict[str, float]:
    from scipy.optimize import minimize

    keys, weights = np.unique(np.stack([x, tx, age]), axis=1, return_counts=True)
    x, tx, age = keys
    scale = max(float(age.max()), 1.0) / 10  # fitted in units of age/10 days: a well-scaled alpha

    def loss(log_params: np.ndarray) -> float:
        return -float(np.dot(weights, bgnbd_loglik(np.exp(log_params), x, tx / scale, age / scale))) / weights.sum()

    bounds = [(-10, 10)] * 4
    best = min((minimize(loss, start, method="L-BFGS-B", bounds=bounds)
                for start in (np.array([0.0, 0.0, 0.1, 0.0]), np.array([-1.0, 1.0, 1.0, 1.0]))),
               key=lambda result: result.fun)
    r, alpha, a, b = np.exp(best.x)
    if abs(a - 1) < 1e-6:  # the conditional expectation divides by a - 1 (its limit is finite)
        a = 1 + 1e-6
    return {"r": float(r), "alpha": float(alpha * scale), "a": float(a), "b": float(b)}


def bgnbd_loglik(params, x, tx, age):
    """Each customer's BG/NBD log-likelihood (Fader, Hardie and Lee 2005, equation 6)."""
    from scipy.special import gammaln

    r, alpha, a, b = params
    common = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
              + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x))
    alive = -(r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + tx),
                           -np.inf)
    return common + np.logaddexp(alive, dropped)


def gamma_gamma_parameters(x: np.ndarray, m: np.ndarray) -> dict[str, float]:
    from scipy.optimize import minimize
    from scipy.special import gammaln

    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 2:
        raise InputError("no customer has bought on more than one day: predictions need repeat purchases")
    scale = float(np.median(m))  # spend fitted in units of its median

    def loss(log_params: np.ndarray) -> float:
        p, q, v = np.exp(log_params)
        mm = m / scale
        ll = (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v) + (p * x - 1) * np.log(mm)
              + p * x * np.log(x) - (p * x + q) * np.log(x * mm + v))
        return -float(ll.mean())

    bounds = [(-10, 10), (math.log(1.0001), 10), (-10, 10)]  # q > 1: a finite mean spend
    best = minimize(loss, np.array([0.0, 0.5, 0.0]), method="L-BFGS-B", bounds=bounds)
    p, q, v = np.exp(best.x)
    return {"p": float(p), "q": float(q), "v": float(v * scale)}


def bgnbd_expectations(params: dict[str, float], x, tx, age, horizon: float):
    """(P(alive), P(at least one purchase in the horizon), E[purchases in the horizon]) per customer."""
    from scipy.special import hyp2f1

    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = np.where(x > 0, (a / np.maximum(b + x - 1, 1e-300)) * ((alpha + age) / (alpha + tx)) ** (r + x), 0.0)
        p_alive = 1.0 / (1.0 + ratio)
        stay = ((alpha + age) / (alpha + age + horizon)) ** (r + x)
        p_any = p_alive * (1.0 - stay)
        z = horizon / (alpha + age + horizon)
        c = a + b + x - 1
        hyp = hyp2f1(r + x, b + x, c, z)
        # Where the series overflows, Euler's transformation of the same function.
        euler = hyp2f1(c - r - x, c - b - x, c, z) * (1 - z) ** (c - r - x - b - x)
        hyp = np.where(np.isfinite(hyp), hyp, euler)
        expected = (c / (a - 1)) * (1.0 - hyp * stay) / (1.0 + ratio)
    return p_alive, np.clip(p_any, 0.0, 1.0), np.maximum(np.nan_to_num(expected), 0.0)


def gamma_gamma_mean(params: dict[str, float], x: Column, m: Column) -> Column:
    """E[spend per purchase | x repeat purchases of mean m]; the population mean for x = 0."""
    p, q, v = (F.lit(params[k]) for k in ("p", "q", "v"))
    return F.when(x > 0, p * (v + x * m) / (p * x + q - 1)).otherwise(p * v / (q - 1))


def with_bgnbd(view: DataFrame, fitted: dict[str, dict[str, float]], horizon: float, prefix: str) -> DataFrame:
    """``view`` with PREFIXp, PREFIXn, PREFIXs (p_purchase, purchases, spend) over ``horizon`` days,
    on the executors."""
    params = fitted["bgnbd"]
    names = [f"{prefix}p", f"{prefix}n"]

    def expect(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            _, p_any, expected = bgnbd_expectations(
                params, batch["x"].to_numpy(float), batch["tx"].to_numpy(float), batch["age"].to_numpy(float), horizon)
            yield batch.assign(**{names[0]: p_any, names[1]: expected})

    schema = T.StructType(view.schema.fields + [T.StructField(n, T.DoubleType()) for n in names])
    scored = view.mapInPandas(expect, schema)
    return scored.withColumn(f"{prefix}s", F.col(names[1]) * gamma_gamma_mean(fitted["gamma_gamma"], F.col("x"),
                                                                               F.col("m")))


def seasonal_factors(stats: DataFrame, tag: str, as_of: datetime.date, customers: int, horizon: int, cfg,
                     seed: int, clock: bool = True) -> dict[str, Any]:
    """What BG/NBD with Gamma-Gamma, fitted on the history before ``tag``'s date (a year before the
    date to correct), missed over the H days from it: actual / predicted total purchases and spend,
    over the customers known then. The same H days of the calendar a year on should be missed alike.
    With ``clock``, also their ``equivalent_horizon`` (``days``), which scoring needs."""
    view = view_as_of(stats, tag, with_actuals=True, bgnbd_only=True)
    x, tx, age, m = sufficient_statistics(_fit_sample(view, customers, cfg.fit_customers, seed))
    fitted = _fit_statistics(x, tx, age, m)
    totals = with_bgnbd(view, fitted, horizon, "year_").agg(
        F.sum("year_n").alias("predicted_purchases"), F.sum("actual_purchases").alias("actual_purchases"),
        F.sum("year_s").alias("predicted_spend"), F.sum("actual_spend").alias("actual_spend"),
    ).first()
    purchases = float(totals["actual_purchases"] / totals["predicted_purchases"])
    return {
        "as_of": as_of.isoformat(),
        "forecast_from": (as_of + datetime.timedelta(days=YEAR_DAYS)).isoformat(),
        "purchases": purchases,
        "spend": float(totals["actual_spend"] / totals["predicted_spend"]),
        **({"days": equivalent_horizon(fitted["bgnbd"], x, tx, age, horizon, purchases)} if clock else {}),
    }


def equivalent_horizon(params: dict[str, float], x: np.ndarray, tx: np.ndarray, age: np.ndarray, horizon: int,
                       factor: float) -> float:
    """The days in which BG/NBD expects the customers (x, tx, age) to make ``factor`` times the
    purchases it expects of them in ``horizon`` days. BG/NBD's customers drop out at a purchase,
    not with the days, so a season that scales everyone's rate of purchase by g(t) is the same
    process on a clock that runs g(t) days a day: over the H days, the clock runs this many. At
    most EQUIVALENT_ROWS customers of the sample are summed (the target is a ratio)."""
    from scipy.optimize import brentq

    x, tx, age = (values[:EQUIVALENT_ROWS] for values in (x, tx, age))

    def expected(days: float) -> float:
        return float(bgnbd_expectations(params, x, tx, age, days)[2].sum())

    target = factor * expected(horizon)
    if not target > 0:
        return 0.0
    high = horizon * max(2.0, 2.0 * factor)
    while expected(high) < target and high < EQUIVALENT_LIMIT * horizon:
        high *= 2
    if expected(high) < target:  # more than the customers would make in any time: the longest clock
        return float(high)
    return round(float(brentq(lambda days: expected(days) - target, 0.0, high, xtol=0.01)), 2)


def season_dates(reference: datetime.date, horizon: int, span: int) -> dict[str, datetime.date]:
    """The dates the seasonal variant aggregates (``customer_stats``' ``bgnbd_dates``), none for a
    history of ``span`` days shorter than ``seasonal_history``: a year before the cutoff and before
    the reference date (``year_cut``, ``year_ref``: its backtest's and its forecast's factors), and
    the starts of up to SEASON_WINDOWS - 1 windows of H days before the backtest's, a quarter of a
    year (or H days, if longer) apart (``wI``), with the dates a year before each (``wI_year``), as
    many as the history allows a fit two horizons long a year before each."""
    needed = seasonal_history(horizon)
    if span < needed:
        return {}
    year = datetime.timedelta(days=YEAR_DAYS)
    cutoff = reference - datetime.timedelta(days=horizon)
    dates = {"year_cut": cutoff - year, "year_ref": reference - year}
    step = max(horizon, YEAR_DAYS // 4)
    for i in range(min(SEASON_WINDOWS - 1, (span - needed) // step)):
        start = cutoff - datetime.timedelta(days=step * (i + 1))
        dates[f"w{i}"], dates[f"w{i}_year"] = start, start - year
    return dates


def earlier_windows(stats: DataFrame, summary, dates: dict[str, datetime.date], horizon: int, cfg,
                    seed: int) -> list[dict[str, Any]]:
    """For each window of the ``season_dates`` (aggregated in ``stats``, counted in ``summary``)
    with customers enough to fit on: the miss of total purchases and spend of bgnbd fitted on the
    history before it, and of bgnbd_seasonal (times the factors of a year earlier). They let the
    choice judge the factors across the year, not on one season of it. Two BG/NBD fits a window,
    only for histories this long."""
    windows = []
    for pair in ((f"w{i}", f"w{i}_year") for i in range(SEASON_WINDOWS - 1) if f"w{i}" in dates):
        if any(summary[f"known_{t}"] < FIT_MINIMUM[0] or summary[f"repeaters_{t}"] < FIT_MINIMUM[1] for t in pair):
            continue
        now, year = (seasonal_factors(stats, t, dates[t], int(summary[f"known_{t}"]), horizon, cfg, seed, clock=False)
                     for t in pair)  # judged by the factors' totals: no clock to solve
        windows.append({"from": dates[pair[0]].isoformat(), "bgnbd": _window_misses(now, None),
                        SEASONAL: _window_misses(now, year)})
    return windows


def _window_misses(now: dict[str, Any], year: Optional[dict[str, Any]]) -> dict[str, Optional[float]]:
    """predicted / actual - 1 of bgnbd (``now``'s factors are actual / predicted), times ``year``'s."""
    return {f"{key}_error": (year[key] if year else 1.0) / now[key] - 1 if now[key] else None
            for key in ("purchases", "spend")}


def with_seasonal(view: DataFrame, fitted: dict[str, dict[str, float]], factors: dict[str, Any], horizon: int,
                  prefix: str) -> DataFrame:
    """``view`` with PREFIXp, PREFIXn, PREFIXs of bgnbd_seasonal: bgnbd's probability and purchases
    over the H days' ``equivalent_horizon`` (``factors["days"]``), and its spend per purchase times
    the season's (the spend factor over the purchases factor). Factors saved without days (before
    schema_version 9): bgnbd's probability over H days, its purchases and spend times the factors."""
    days = factors.get("days")
    if days is None:
        scored = with_bgnbd(view, fitted, horizon, prefix)
        return scored.withColumns({f"{prefix}n": F.col(f"{prefix}n") * F.lit(factors["purchases"]),
                                   f"{prefix}s": F.col(f"{prefix}s") * F.lit(factors["spend"])})
    per_purchase = factors["spend"] / factors["purchases"] if factors["purchases"] else 1.0
    scored = with_bgnbd(view, fitted, days, prefix)
    return scored.withColumn(f"{prefix}s", F.col(f"{prefix}s") * F.lit(per_purchase))


def with_baselines(view: DataFrame, horizon: int) -> DataFrame:
    """The naive baselines: ``recency_`` (a rank score only) and ``past_rate_`` (own past rate)."""
    rate = F.col("days") / F.greatest(F.col("age"), F.lit(1.0))  # purchase days per day known
    expected = rate * horizon
    return view.withColumns({
        "recency_p": -F.col("recency"),
        "recency_s": -F.col("recency"),
        "past_rate_p": 1 - F.exp(-expected),
        "past_rate_n": expected,
        "past_rate_s": expected * F.col("mean_spend"),
    })


# --- gradient-boosted trees ------------------------------------------------------------------


def fit_trees(view: DataFrame, customers: int, cfg, seed: int) -> dict[str, Any]:
    """The classifier and the regressor, on at most ``cfg.fit_customers`` of the ``customers`` of a
    labelled ``view``. Those rows are cached in a few partitions of TREE_ROWS_PER_PARTITION: every
    boosting round runs jobs over all of them, so their count, not the rows, sets the cost of a
    round (200 partitions of CDNOW's 23,500 customers: 359 s; 8: 32 s)."""
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.regression import GBTRegressor

    rows = _fit_sample(view, customers, cfg.fit_customers, seed)
    partitions = max(1, math.ceil(min(customers, cfg.fit_customers) / TREE_ROWS_PER_PARTITION))
    labelled = rows.withColumn("label_any", (F.col("actual_purchases") > 0).cast("double"))
    train = _assembled(labelled).repartition(partitions).cache()
    try:
        common = dict(featuresCol="__features", maxDepth=4, maxIter=cfg.gbt_iterations, stepSize=0.1, seed=seed,
                      subsamplingRate=0.8)
        classifier = GBTClassifier(labelCol="label_any", **common).fit(train)
        regressor = GBTRegressor(labelCol="actual_purchases", **common).fit(train)
    finally:
        train.unpersist()
    return {"classifier": classifier, "regressor": regressor}


def _assembled(view: DataFrame) -> DataFrame:
    from pyspark.ml.feature import VectorAssembler

    return VectorAssembler(inputCols=list(GBT_FEATURES), outputCol="__features").transform(view)


def with_trees(view: DataFrame, trees: dict[str, Any], gamma_gamma: dict[str, float], prefix: str) -> DataFrame:
    from pyspark.ml.functions import vector_to_array

    classifier = trees["classifier"].copy({trees["classifier"].probabilityCol: "__probability",
                                           trees["classifier"].predictionCol: "__class",
                                           trees["classifier"].rawPredictionCol: "__raw"})
    regressor = trees["regressor"].copy({trees["regressor"].predictionCol: "__count"})
    scored = regressor.transform(classifier.transform(_assembled(view)))
    p = vector_to_array(F.col("__probability"))[1]
    n = F.greatest(F.col("__count"), p)  # at least the chance of one purchase
    return scored.withColumns({
        f"{prefix}p": p,
        f"{prefix}n": n,
        f"{prefix}s": n * gamma_gamma_mean(gamma_gamma, F.col("x"), F.col("m")),
    }).drop("__features", "__probability", "__class", "__raw", "__count")


# --- the backtest ----------------------------------------------------------------------------


def evaluate(scored: DataFrame, models: list[str], cutoff: datetime.date, horizon: int, customers: int,
             bound: int, seed: int) -> list[dict[str, Any]]:
    """One predictions_eval row per model and baseline."""
    names = [*models, *BASELINES]
    scored = scored.cache()  # the totals and the sample read the models' scores once
    try:
        return _evaluate(scored, names, cutoff, horizon, customers, bound, seed)
    finally:
        scored.unpersist()


def _evaluate(scored: DataFrame, names: list[str], cutoff: datetime.date, horizon: int, customers: int,
              bound: int, seed: int) -> list[dict[str, Any]]:
    totals = scored.agg(
        F.sum("actual_purchases").alias("actual_purchases"),
        F.sum("actual_spend").alias("actual_spend"),
        *[F.sum(f"{m}_n").alias(f"{m}_n") for m in names if m != "recency"],
        *[F.sum(f"{m}_s").alias(f"{m}_s") for m in names if m != "recency"],
    ).first().asDict()
    fraction = min(1.0, 1.05 * bound / max(customers, 1))
    sample = scored.sample(fraction=fraction, seed=seed) if fraction < 1 else scored
    columns = ["actual_purchases", "actual_spend", *[f"{m}_{s}" for m in names for s in ("p", "s")]]
    local = sample.select(*columns).limit(bound).toPandas()
    actual_any = (local["actual_purchases"].to_numpy() > 0).astype(float)
    actual_spend = local["actual_spend"].to_numpy(dtype=float)
    rows = []
    for m in names:
        p = local[f"{m}_p"].to_numpy(dtype=float)
        s = local[f"{m}_s"].to_numpy(dtype=float)
        predicted_n = totals.get(f"{m}_n")
        predicted_s = totals.get(f"{m}_s")
        calibrated = m != "recency"
        cal_p, cal_a = calibration(p, actual_any) if calibrated else (None, None)
        rows.append({
            "model": m,
            "chosen": False,
            "cutoff": cutoff,
            "horizon_days": horizon,
            "customers": customers,
            "evaluated_customers": len(local),
            "auc": auc(p, actual_any),
            "top_decile_spend_share": gain(s, actual_spend, 10)[0] if len(local) else None,
            "predicted_purchases": predicted_n,
            "actual_purchases": float(totals["actual_purchases"]),
            "purchases_error": _relative(predicted_n, totals["actual_purchases"]),
            "predicted_spend": predicted_s,
            "actual_spend": float(totals["actual_spend"]),
            "spend_error": _relative(predicted_s, totals["actual_spend"]),
            "calibration_predicted": cal_p,
            "calibration_actual": cal_a,
            "gain": gain(s, actual_spend, GAIN_POINTS) if len(local) else None,
        })
    return rows


def _relative(predicted: Optional[float], actual: float) -> Optional[float]:
    if predicted is None or not actual:
        return None
    return float(predicted / actual - 1.0)


def auc(score: np.ndarray, positive: np.ndarray) -> Optional[float]:
    """The area under the ROC curve, ties counted half (Mann-Whitney); None with one class only."""
    from scipy.stats import rankdata

    n_pos = float(positive.sum())
    n_neg = float(len(positive) - n_pos)
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(score)
    return float((ranks[positive > 0].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gain(score: np.ndarray, spend: np.ndarray, points: int) -> list[float]:
    """The share of total spend by the top 1/points, 2/points, ... of customers by score."""
    total = float(spend.sum())
    order = np.argsort(-score, kind="stable")
    cumulative = np.cumsum(spend[order])
    n = len(score)
    return [float(cumulative[max(math.ceil(n * i / points), 1) - 1] / total) if total else 0.0
            for i in range(1, points + 1)]


def calibration(p: np.ndarray, actual: np.ndarray) -> tuple[list[float], list[float]]:
    """Per decile of the predicted probability: (mean predicted, share that bought)."""
    order = np.argsort(p, kind="stable")
    groups = [g for g in np.array_split(order, DECILES) if len(g)]
    return [float(p[g].mean()) for g in groups], [float(actual[g].mean()) for g in groups]


def choose_model(evaluation: list[dict[str, Any]], forced: str,
                 windows: list[dict[str, Any]] = ()) -> tuple[str, str]:
    """bgnbd unless the trees are ahead of it by more than CHOICE_MARGINS on at least two of AUC,
    top-decile capture and total error. One held-out period measures each with noise, and the
    trees extrapolate from one horizon earlier still: a near tie goes to the field's reference.
    Where bgnbd is chosen and its seasonal variant was backtested, that variant when it cuts the
    mean total miss by more than the total-error margin (its ranks are bgnbd's), over the held-out
    H days and the ``earlier_windows``. A forced model (``predict.model``) only where the backtest
    scored it: a history too short for it gets bgnbd, as ``auto`` would."""
    if forced != "auto":
        if any(r["model"] == forced for r in evaluation):
            return forced, f"predict.model is {forced}"
        return "bgnbd", f"predict.model is {forced}, which the backtest could not score: bgnbd instead"
    chosen, decided_by = _bgnbd_or_trees({r["model"]: r for r in evaluation if r["model"] in MODELS})
    seasonal = next((r for r in evaluation if r["model"] == SEASONAL), None)
    if chosen == "bgnbd" and seasonal is not None:
        held_out = {"bgnbd": next(r for r in evaluation if r["model"] == "bgnbd"), SEASONAL: seasonal}
        every = [held_out, *windows]
        plain, adjusted = (sum(_total_miss(w[m]) for w in every) / len(every) for m in ("bgnbd", SEASONAL))
        margin = CHOICE_MARGINS["total error"]
        verdict = "cut" if plain - adjusted > margin else "did not cut"
        decided_by += (f"; the factors of a year earlier {verdict} bgnbd's mean total miss over {len(every)} "
                       f"window{'s' if len(every) > 1 else ''} of the horizon by more than {margin * 100:.0f} "
                       f"points ({plain:.1%} to {adjusted:.1%})")
        if verdict == "cut":
            return SEASONAL, decided_by
    return chosen, decided_by


def _bgnbd_or_trees(rows: dict[str, dict[str, Any]]) -> tuple[str, str]:
    if len(rows) == 1:
        return "bgnbd", "the only model the history allows"
    criteria = {
        "AUC": lambda r: r["auc"] if r["auc"] is not None else -math.inf,
        "top-decile spend share": lambda r: r["top_decile_spend_share"] or -math.inf,
        "total error": lambda r: -_total_miss(r),
    }
    ahead = [name for name, value in criteria.items()
             if value(rows["gbt"]) - value(rows["bgnbd"]) > CHOICE_MARGINS[name]]
    if len(ahead) >= 2:
        return "gbt", f"backtest: the trees ahead of bgnbd by more than the margin on {', '.join(ahead)}"
    behind = [name for name in criteria if name not in ahead]
    return "bgnbd", f"backtest: the trees not ahead by more than the margin on {', '.join(behind)}"


def _total_miss(row: dict[str, Any]) -> float:
    """The mean of the absolute relative misses of total purchases and total spend."""
    errors = [abs(row[k]) for k in ("purchases_error", "spend_error") if row[k] is not None]
    return sum(errors) / len(errors) if errors else math.inf

