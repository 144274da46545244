"""Stage 1b, RFM (``input.kind: transactions``): one row per customer from their transactions.

Per customer, aggregated in Spark:

- ``recency_days``: days from the last purchase to the reference date;
- ``frequency``: distinct orders (``order_col``), or distinct purchase dates without one;
- ``monetary``: the sum of all amounts, so returns (negative amounts) are netted;
- ``avg_order_value``: monetary / frequency;
- ``tenure_days``: days from the first purchase to the reference date.

A *purchase* is a transaction with a positive amount: recency, tenure and frequency count
only those, while returns only lower ``monetary``. The reference date is
``input.transactions.reference_date`` (transactions after it are left out, and counted),
or by default the last date in the data plus one day. Customers whose net amount is zero
or less are dropped and counted. A transaction without a customer, a readable date or a
readable amount is dropped and counted by reason; amounts stored as text are read by
``input.number_text``, and dates by ``input.transactions.date_format``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.config import RFM_COLUMNS, InputConfig
from segmentation.errors import InputError
from segmentation.parse import date_from, is_blank, number_from_text
from segmentation.sql import column

DATE, AMOUNT = "__date", "__amount"


@dataclass(frozen=True)
class RfmFacts:
    """What building the customer table found, for the manifest."""

    transactions: int
    dropped_transactions: dict[str, int]
    customers: int
    dropped_customers: int  # net amount zero or less
    reference_date: str
    first_purchase: Optional[datetime.date] = None  # the earliest purchase (not in the manifest)

    @property
    def reference(self) -> datetime.date:
        return datetime.date.fromisoformat(self.reference_date)

    def to_dict(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions,
            "dropped_transactions": self.dropped_transactions,
            "customers": self.customers,
            "dropped_customers_net_not_positive": self.dropped_customers,
            "reference_date": self.reference_date,
        }


def carried_columns(cfg: InputConfig, features: tuple[str, ...]) -> tuple[str, ...]:
    """The columns labels carry beside the features: for transactions every other RFM column."""
    return tuple(c for c in RFM_COLUMNS if c not in features) if cfg.kind == "transactions" else ()


def transaction_reasons(cfg: InputConfig, has_reference: bool) -> list[str]:
    tx = cfg.transactions
    reasons = [
        f"null {cfg.id_col}",
        f"null {tx.date_col}",
        f"unparseable {tx.date_col}",
        f"null {tx.amount_col}",
        f"unparseable {tx.amount_col}",
    ]
    return reasons + ([f"{tx.date_col} after reference date"] if has_reference else [])


def configured_reference(cfg: InputConfig) -> Optional[datetime.date]:
    """``input.transactions.reference_date`` as a date; None: the last date plus one day."""
    return datetime.date.fromisoformat(cfg.transactions.reference_date) if cfg.transactions.reference_date else None


def parse_transactions(transactions: DataFrame, cfg: InputConfig) -> tuple[DataFrame, list[str]]:
    """The transactions typed, each with the reason it cannot be used (null when it can).

    Columns: the customer id, ``DATE`` (a date), ``AMOUNT`` (a double), ``__order`` (with
    ``order_col``) and ``__reason``, one of ``transaction_reasons``; returns those reasons too.
    """
    tx = cfg.transactions
    _check_columns(transactions, cfg)
    types = {f.name: f.dataType for f in transactions.schema.fields}
    customer, raw_date, raw_amount = (column(c) for c in (cfg.id_col, tx.date_col, tx.amount_col))
    date = date_from(raw_date, tx.date_format, not isinstance(types[tx.date_col], (T.DateType, T.TimestampType)))
    if isinstance(types[tx.amount_col], T.StringType):
        amount = number_from_text(raw_amount, cfg.number_text)
    else:
        amount = F.when(F.abs(raw_amount.cast("double")) < float("inf"), raw_amount.cast("double"))
    reference = configured_reference(cfg)
    reasons = transaction_reasons(cfg, reference is not None)
    checks: list[Column] = [
        customer.isNull(),
        _blank(raw_date, types[tx.date_col]),
        date.isNull(),
        _blank(raw_amount, types[tx.amount_col]),
        amount.isNull(),
    ]
    if reference is not None:
        checks.append(date > F.lit(reference))
    reason = F.lit(None).cast("string")
    for check, text in reversed(list(zip(checks, reasons))):
        reason = F.when(check, F.lit(text)).otherwise(reason)

    return transactions.select(
        customer.alias(cfg.id_col),
        date.alias(DATE),
        amount.alias(AMOUNT),
        *([column(tx.order_col).alias("__order")] if tx.order_col else []),
        reason.alias("__reason"),
    ), reasons


def purchases(transactions: DataFrame, cfg: InputConfig, reference: datetime.date) -> DataFrame:
    """The usable purchases (positive amounts) before ``reference``: the id, ``DATE`` and ``AMOUNT``."""
    reasoned, _ = parse_transactions(transactions, cfg)
    return reasoned.where(
        F.col("__reason").isNull() & (F.col(AMOUNT) > 0) & (F.col(DATE) < F.lit(reference))
    ).select(column(cfg.id_col), DATE, AMOUNT)


def customer_rfm(transactions: DataFrame, cfg: InputConfig) -> tuple[DataFrame, DataFrame, RfmFacts]:
    """The customers' RFM table, the cache behind it, and the facts of the one pass over the transactions.

    Columns: the customer id (``cfg.id_col``, in its own type) and ``RFM_COLUMNS``. The
    per-customer aggregate is cached, so later stages do not read the transactions again;
    the caller unpersists it.
    """
    tx = cfg.transactions
    reasoned, reasons = parse_transactions(transactions, cfg)
    reference = configured_reference(cfg)
    observation = Observation("transactions")
    reasoned = reasoned.observe(
        observation,
        F.count(F.lit(1)).alias("rows"),
        *[F.count(F.when(F.col("__reason") == text, 1)).alias(f"r{i}") for i, text in enumerate(reasons)],
    )
    valid = reasoned.where(F.col("__reason").isNull())
    purchase = F.col(AMOUNT) > 0
    order = F.col("__order") if tx.order_col else F.col(DATE)
    per_customer = (
        valid.groupBy(column(cfg.id_col))
        .agg(
            F.sum(AMOUNT).alias("monetary"),
            F.count_distinct(F.when(purchase, order)).alias("frequency"),
            F.min(F.when(purchase, F.col(DATE))).alias("__first"),
            F.max(F.when(purchase, F.col(DATE))).alias("__last"),
            F.max(DATE).alias("__latest"),
        )
        .cache()
    )
    summary = per_customer.agg(
        F.count(F.lit(1)).alias("customers"),
        F.count(F.when(F.col("monetary") <= 0, 1)).alias("not_positive"),
        F.max("__latest").alias("latest"),
        F.min("__first").alias("first_purchase"),
    ).first()
    metrics = observation.get
    dropped = {text: int(metrics[f"r{i}"]) for i, text in enumerate(reasons) if metrics[f"r{i}"]}
    if summary["customers"] == 0:
        per_customer.unpersist()
        raise InputError(
            f"no transaction of {cfg.path} has a customer, a date and an amount: {dict(sorted(dropped.items()))}"
        )
    if reference is None:
        reference = summary["latest"] + datetime.timedelta(days=1)
    ref = F.lit(reference)
    customers = per_customer.where(F.col("monetary") > 0).select(
        column(cfg.id_col),
        F.datediff(ref, F.col("__last")).alias("recency_days"),
        F.col("frequency"),
        F.col("monetary"),
        (F.col("monetary") / F.col("frequency")).alias("avg_order_value"),
        F.datediff(ref, F.col("__first")).alias("tenure_days"),
    )
    assert tuple(customers.columns[1:]) == RFM_COLUMNS
    facts = RfmFacts(
        transactions=int(metrics["rows"]),
        dropped_transactions=dict(sorted(dropped.items())),
        customers=int(summary["customers"]),
        dropped_customers=int(summary["not_positive"]),
        reference_date=reference.isoformat(),
        first_purchase=summary["first_purchase"],
    )
    return customers, per_customer, facts


def _blank(raw: Column, data_type: T.DataType) -> Column:
    return is_blank(raw) if isinstance(data_type, T.StringType) else raw.isNull()


def _check_columns(transactions: DataFrame, cfg: InputConfig) -> None:
    tx = cfg.transactions
    available = transactions.columns
    named = {
        "customer": cfg.id_col, "date": tx.date_col, "amount": tx.amount_col, "order": tx.order_col,
    }
    for role, name in named.items():
        if name is not None and name not in available:
            raise InputError(
                f"{role} column {name!r} not found in the transactions; they have: {', '.join(available)}"
            )
