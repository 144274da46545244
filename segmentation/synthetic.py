"""Synthetic customers with planted segments, made on the executors.

Every value is a pure function of ``(customer_id, seed)`` through Spark's
``xxhash64``, so the same seed gives the same rows whatever the number of
partitions, and 100M rows never pass through the driver.

The planted segments are the archetypes of the seed documents, in original units
(mean and standard deviation of each feature), taken in this order:
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

FEATURES = ("age", "annual_income", "spending", "purchase_frequency")

# name, share of customers, (mean, sd) of age, annual_income, spending, purchase_frequency
ARCHETYPES = (
    ("High-Value", 0.15, (46, 6), (118_000, 12_000), (9_000, 900), (30, 4)),
    ("Low-Engagement", 0.25, (52, 7), (50_000, 8_000), (700, 200), (3, 1.2)),
    ("Young frequent buyers", 0.20, (24, 3), (34_000, 6_000), (2_600, 400), (48, 5)),
    ("Affluent careful spenders", 0.15, (58, 5), (140_000, 13_000), (1_800, 400), (8, 2)),
    ("Mainstream", 0.25, (38, 5), (70_000, 8_000), (4_500, 500), (18, 3)),
    ("Budget big spenders", 0.12, (29, 4), (28_000, 5_000), (7_200, 700), (26, 3)),
    ("Retired occasional buyers", 0.10, (71, 4), (42_000, 6_000), (2_200, 400), (9, 2)),
    ("Affluent frequent buyers", 0.10, (40, 5), (100_000, 9_000), (5_800, 500), (40, 4)),
)
MAX_SEGMENTS = len(ARCHETYPES)

__doc__ += "\n" + "\n".join(f"{i}. {a[0]}" for i, a in enumerate(ARCHETYPES))

_BUCKETS = 1 << 52


def _uniform(customer: Column, seed: int, stream: int) -> Column:
    """A uniform number in (0, 1) from the id, the seed and a stream number."""
    bits = F.pmod(F.xxhash64(customer, F.lit(seed), F.lit(stream)), F.lit(_BUCKETS))
    return (bits.cast("double") + 0.5) / float(_BUCKETS)


def _normal(customer: Column, seed: int, stream: int) -> Column:
    """A standard normal number by the Box-Muller transform of two uniforms."""
    u1, u2 = _uniform(customer, seed, 2 * stream), _uniform(customer, seed, 2 * stream + 1)
    return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * 3.141592653589793 * u2)


@dataclass(frozen=True)
class Period:
    """A later period of the same customers: every period after the first, each customer
    leaves with probability ``left`` and moves to another archetype with probability ``moved``
    (to archetype ``move_to``, or one drawn by the archetypes' shares), and ``joined`` times the
    first period's customers arrive, with ids after all earlier ones. A customer who neither
    leaves nor moves keeps every value of the period before."""

    number: int = 1
    moved: float = 0.10
    left: float = 0.05
    joined: float = 0.05
    move_to: Optional[int] = None


def generate_customers(
    spark: SparkSession, rows: int, segments: int = 5, seed: int = 7, partitions: int | None = None,
    period: Period = Period(),
) -> DataFrame:
    """``rows`` customers from the first ``segments`` archetypes, ids 1..rows (in period 1).

    Columns: customer_id (long), age (int), annual_income (double), spending (double),
    purchase_frequency (int), true_segment (int: the archetype's index in this period),
    first_period (int: the period the customer arrived in).
    """
    if not 1 <= segments <= MAX_SEGMENTS:
        raise ValueError(f"segments must be between 1 and {MAX_SEGMENTS}, got {segments}")
    if period.move_to is not None and not 0 <= period.move_to < segments:
        raise ValueError(f"move_to must be an archetype index below {segments}, got {period.move_to}")
    chosen = ARCHETYPES[:segments]
    newcomers = round(rows * period.joined) if period.number > 1 else 0
    last_id = rows + newcomers * (period.number - 1)
    ids = spark.range(1, last_id + 1, numPartitions=partitions) if partitions else spark.range(1, last_id + 1)
    customer = F.col("customer_id")
    df = ids.withColumnRenamed("id", "customer_id")
    first = (F.lit(1) if newcomers == 0 else
             F.when(customer <= rows, 1).otherwise(F.floor((customer - rows - 1) / newcomers) + 2)).cast("int")
    df = df.withColumn("first_period", first).withColumn("true_segment", _archetype(customer, seed, 0, chosen))
    present = F.lit(True)
    for number in range(2, period.number + 1):  # each later period in turn: leave, move or stay
        stream = 1000 + 3 * number
        here = F.col("first_period") < number
        present = present & (~here | (_uniform(customer, seed, stream) >= period.left))
        target = F.lit(period.move_to) if period.move_to is not None else _archetype(customer, seed, stream + 1, chosen)
        moves = here & (_uniform(customer, seed, stream + 2) < period.moved)
        df = df.withColumn("true_segment", F.when(moves, target).otherwise(F.col("true_segment")))
    df = df.where(present)

    values = {}
    for f_index, name in enumerate(FEATURES):
        mean = _by_segment([a[2 + f_index][0] for a in chosen])
        sd = _by_segment([a[2 + f_index][1] for a in chosen])
        values[name] = mean + sd * _normal(customer, seed, f_index + 1)
    return df.select(
        customer,
        F.greatest(F.lit(18), F.round(values["age"])).cast("int").alias("age"),
        F.round(F.greatest(F.lit(0.0), values["annual_income"]), 2).alias("annual_income"),
        F.round(F.greatest(F.lit(0.0), values["spending"]), 2).alias("spending"),
        F.greatest(F.lit(0), F.round(values["purchase_frequency"])).cast("int").alias("purchase_frequency"),
        F.col("true_segment"),
        F.col("first_period"),
    )


def _archetype(customer: Column, seed: int, stream: int, chosen) -> Column:
    """An archetype index drawn by the archetypes' shares."""
    pick = _uniform(customer, seed, stream)
    total_share = sum(a[1] for a in chosen)
    segment = None
    cumulative = 0.0
    for index, archetype in enumerate(chosen[:-1]):
        cumulative += archetype[1] / total_share
        segment = F.when(pick < cumulative, index) if segment is None else segment.when(pick < cumulative, index)
    return (F.lit(len(chosen) - 1) if segment is None else segment.otherwise(len(chosen) - 1)).cast("int")


def _by_segment(values: list[float]) -> Column:
    column = F.when(F.col("true_segment") == 0, float(values[0]))
    for index, value in enumerate(values[1:], start=1):
        column = column.when(F.col("true_segment") == index, float(value))
    return column


# name, share of customers, share of transactions, (least, most) days before the end date, mean amount
TRANSACTION_KINDS = (
    ("Champions", 0.15, 0.45, (0, 60), 90.0),
    ("Loyal", 0.25, 0.35, (0, 240), 45.0),
    ("Hibernating", 0.35, 0.12, (180, 730), 25.0),
    ("New", 0.25, 0.08, (0, 30), 35.0),
)
RETURN_SHARE = 0.03


def generate_transactions(
    spark: SparkSession,
    rows: int,
    customers: int,
    seed: int = 7,
    partitions: int | None = None,
    end: str = "2025-12-31",
) -> DataFrame:
    """``rows`` transactions of about ``customers`` customers of the kinds in TRANSACTION_KINDS.

    Columns: customer_id (long), date (date), invoice (long), amount (double; 3% are
    returns, with a negative amount). Each transaction's kind is drawn by its share of
    transactions, then its customer among that kind's customers, its date within the
    kind's window before ``end`` and its amount around the kind's mean.
    """
    ids = spark.range(1, rows + 1, numPartitions=partitions) if partitions else spark.range(1, rows + 1)
    t = F.col("id")
    pick = _uniform(t, seed, 0)
    kind = customer = days = mean = None
    cumulative, offset = 0.0, 0
    for index, (_, customer_share, tx_share, (least, most), amount) in enumerate(TRANSACTION_KINDS):
        cumulative += tx_share
        count = max(1, round(customers * customer_share))
        this_customer = F.lit(offset + 1) + F.pmod(F.xxhash64(t, F.lit(seed), F.lit(1)), F.lit(count))
        this_days = F.lit(least) + F.floor(_uniform(t, seed, 2) * (most - least + 1))
        last = index == len(TRANSACTION_KINDS) - 1
        condition = F.lit(True) if last else pick < cumulative
        if kind is None:
            customer, days, mean = (F.when(condition, c) for c in (this_customer, this_days, F.lit(amount)))
            kind = True
        else:
            customer = customer.when(condition, this_customer)
            days = days.when(condition, this_days)
            mean = mean.when(condition, F.lit(amount))
        offset += count
    value = F.round(mean * (0.25 + 1.5 * _uniform(t, seed, 3)), 2)
    sign = F.when(_uniform(t, seed, 4) < RETURN_SHARE, -1.0).otherwise(1.0)
    return ids.select(
        customer.cast("long").alias("customer_id"),
        F.date_sub(F.lit(end).cast("date"), days.cast("int")).alias("date"),
        t.alias("invoice"),
        (sign * value).alias("amount"),
    )


@dataclass(frozen=True)
class PurchaseProcess:
    """A known purchase process (BG/NBD with Gamma-Gamma spend), rates per day."""

    r: float = 0.6
    alpha: float = 25.0
    a: float = 0.8
    b: float = 3.0
    p: float = 6.0  # Gamma-Gamma: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, v)
    q: float = 4.0
    v: float = 15.0
    days: int = 540  # the observed history
    joining_days: int = 180  # customers make their first purchase within these first days
    # The season: the rate on day t (from 2024-01-01) is the customer's rate times
    # 1 + seasonality * cos(2 pi (t - peak_day) / 365), whose mean over a year is 1.
    seasonality: float = 0.0
    peak_day: int = 0

    def season(self, t):
        import numpy as np

        return 1.0 + self.seasonality * np.cos(2 * np.pi * (t - self.peak_day) / 365.0)

    def season_total(self, start, end):
        """The integral of ``season`` from ``start`` to ``end`` (days)."""
        import numpy as np

        wave = lambda t: np.sin(2 * np.pi * (t - self.peak_day) / 365.0)  # noqa: E731
        return (end - start) + self.seasonality * 365.0 / (2 * np.pi) * (wave(end) - wave(start))


def simulate_purchases(customers: int, process: PurchaseProcess = PurchaseProcess(), seed: int = 7,
                       horizon: int = 0):
    """Transactions (customer_id, date, amount) of ``customers`` drawn from ``process`` over its
    ``days`` and, beside them, each customer's truth: their rate, whether they are alive at the
    end of the history, and (with ``horizon``) the probability of a purchase in the next
    ``horizon`` days given that truth. Drawn with numpy on the driver: for tests and benches."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rate = rng.gamma(process.r, 1.0 / process.alpha, customers)
    drop = rng.beta(process.a, process.b, customers)
    nu = rng.gamma(process.q, 1.0 / process.v, customers)
    t = rng.uniform(0, process.joining_days, customers)
    ids, times = [np.arange(customers)], [t.copy()]
    alive = np.ones(customers, dtype=bool)
    active = np.arange(customers)
    peak = 1.0 + abs(process.seasonality)
    while len(active):  # purchases at the customer's rate; after each repeat one, gone with probability p
        t[active] += rng.exponential(1.0 / (rate[active] * peak))
        active = active[t[active] < process.days]
        # With a season, a thinned process: a candidate at the peak rate is a purchase with
        # probability season(t) / peak (Lewis and Shedler); without one every candidate is.
        buying = active[rng.random(len(active)) < process.season(t[active]) / peak] if process.seasonality else active
        ids.append(buying)
        times.append(t[buying])
        dies = rng.random(len(buying)) < drop[buying]
        alive[buying[dies]] = False
        active = active[alive[active]]
    customer = np.concatenate(ids)
    day = np.floor(np.concatenate(times)).astype(int)
    amount = np.round(rng.gamma(process.p, 1.0 / nu[customer]), 2) + 0.01
    start = np.datetime64("2024-01-01")
    exposure = process.season_total(process.days, process.days + horizon)
    transactions = pd.DataFrame({"customer_id": customer + 1, "date": start + day.astype("timedelta64[D]"),
                                 "amount": amount})
    truth = pd.DataFrame({"customer_id": np.arange(customers) + 1, "rate": rate, "alive": alive,
                          "p_purchase": np.where(alive, 1 - np.exp(-rate * exposure), 0.0)})
    return transactions, truth
