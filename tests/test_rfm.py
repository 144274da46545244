"""Transactions in, RFM features out: a hand-made set worked out by hand, then the whole job."""

import datetime
import json
import os
import random

import pandas as pd
import pytest
from chispa import assert_df_equality

from segmentation.config import load_config
from segmentation.errors import InputError
from segmentation.job import run_segmentation
from segmentation.rfm import customer_rfm
from segmentation.score import score_customers

from conftest import small_config

D = datetime.date
TRANSACTIONS = "customer_id STRING, date DATE, invoice STRING, amount DOUBLE"
HAND_MADE = [
    # c1: orders o1 (two lines), o2 and o9 on two dates, and a return (o3) that is not a purchase
    ("c1", D(2024, 1, 1), "o1", 10.0),
    ("c1", D(2024, 1, 1), "o1", 5.0),
    ("c1", D(2024, 1, 10), "o2", 20.0),
    ("c1", D(2024, 1, 10), "o9", 1.0),
    ("c1", D(2024, 1, 12), "o3", -5.0),
    # c2 returned everything: net 0, dropped and counted
    ("c2", D(2024, 1, 5), "o4", 100.0),
    ("c2", D(2024, 1, 5), "o4r", -100.0),
    # c3 bought once, on the last date of the data
    ("c3", D(2024, 1, 15), "o5", 7.5),
    # c4: two orders; a line without a date is dropped
    ("c4", D(2024, 1, 2), "o6", 3.0),
    ("c4", D(2024, 1, 3), "o7", 3.0),
    ("c4", None, "o10", 50.0),
    # without a customer, or without an amount: dropped and counted
    (None, D(2024, 1, 1), "o8", 1.0),
    ("c5", D(2024, 1, 4), "o11", None),
]
RFM_SCHEMA = (
    "customer_id STRING, recency_days INT, frequency BIGINT, monetary DOUBLE, "
    "avg_order_value DOUBLE, tenure_days INT"
)


def _config(**overrides):
    base = {"input.kind": "transactions", "input.transactions.order_col": "invoice"}
    base.update(overrides)
    return load_config(None, base).input


def test_rfm_of_a_hand_made_set_by_orders(spark):
    transactions = spark.createDataFrame(HAND_MADE, TRANSACTIONS)
    customers, cache, facts = customer_rfm(transactions, _config())
    # The last date is 2024-01-15, so the reference date is 2024-01-16.
    expected = spark.createDataFrame(
        [
            ("c1", 6, 3, 31.0, 31.0 / 3, 15),
            ("c3", 1, 1, 7.5, 7.5, 1),
            ("c4", 13, 2, 6.0, 3.0, 14),
        ],
        RFM_SCHEMA,
    )
    assert_df_equality(customers, expected, ignore_row_order=True, ignore_nullable=True)
    assert facts.to_dict() == {
        "transactions": 13,
        "dropped_transactions": {"null amount": 1, "null customer_id": 1, "null date": 1},
        "customers": 4,
        "dropped_customers_net_not_positive": 1,
        "reference_date": "2024-01-16",
    }
    assert facts.first_purchase == D(2024, 1, 1)  # for predict's seasonal windows, not the manifest
    cache.unpersist()


def test_rfm_by_purchase_dates_and_a_given_reference_date(spark):
    transactions = spark.createDataFrame(HAND_MADE, TRANSACTIONS)
    cfg = _config(**{"input.transactions.order_col": None, "input.transactions.reference_date": "2024-01-12"})
    customers, cache, facts = customer_rfm(transactions, cfg)
    # Without an order column c1 bought on two dates; c3's purchase after 2024-01-12 is left out.
    expected = spark.createDataFrame(
        [("c1", 2, 2, 31.0, 15.5, 11), ("c4", 9, 2, 6.0, 3.0, 10)], RFM_SCHEMA
    )
    assert_df_equality(customers, expected, ignore_row_order=True, ignore_nullable=True)
    assert facts.dropped_transactions["date after reference date"] == 1
    assert facts.reference_date == "2024-01-12"
    cache.unpersist()


def test_text_amounts_and_number_dates_are_read_by_the_configured_rules(spark):
    rows = [("a", 20240101, "$1,000.50"), ("a", 20240103, " (0.50) "), ("b", 20240102, "12"),
            ("b", 202401, "3"), ("c", 20240102, "n/a")]
    transactions = spark.createDataFrame(rows, "cust STRING, day INT, total STRING")
    cfg = _config(**{
        "input.id_col": "cust", "input.transactions.date_col": "day", "input.transactions.amount_col": "total",
        "input.transactions.order_col": None, "input.transactions.date_format": "yyyyMMdd",
    })
    customers, cache, facts = customer_rfm(transactions, cfg)
    rows = {r["cust"]: r for r in customers.collect()}
    assert rows["a"]["monetary"] == pytest.approx(1000.0) and rows["a"]["frequency"] == 1
    assert rows["a"]["recency_days"] == 3 and rows["a"]["tenure_days"] == 3  # the return is not a purchase
    assert rows["b"]["monetary"] == 12.0
    assert set(rows) == {"a", "b"}
    assert rows["b"]["recency_days"] == 2  # the reference date is 2024-01-04, the day after a's return
    assert facts.dropped_transactions == {"unparseable day": 1, "unparseable total": 1}
    cache.unpersist()


def test_missing_transaction_columns_are_named(spark):
    transactions = spark.createDataFrame(HAND_MADE, TRANSACTIONS)
    with pytest.raises(InputError, match="amount column 'total' not found in the transactions; they have: customer_id"):
        customer_rfm(transactions, _config(**{"input.transactions.amount_col": "total"}))


def planted_transactions(seed: int = 5) -> list[tuple]:
    """Three planted kinds of customer over one year: recent big spenders, lapsed small ones, new ones."""
    rng = random.Random(seed)
    end = datetime.date(2024, 12, 31)
    rows = []
    for i in range(300):
        kind = i % 3
        if kind == 0:  # frequent, recent, big
            days = sorted(rng.sample(range(0, 360), 20))[::-1]
            days[-1] = rng.randint(0, 6)
            amounts = [rng.uniform(150, 250) for _ in days]
        elif kind == 1:  # two small orders long ago
            days = [rng.randint(250, 360), rng.randint(250, 360)]
            amounts = [rng.uniform(10, 30) for _ in days]
        else:  # one recent order
            days = [rng.randint(0, 10)]
            amounts = [rng.uniform(20, 60)]
        for n, (day, amount) in enumerate(zip(days, amounts)):
            date = end - datetime.timedelta(days=day)
            rows.append((f"C{i:04d}", date.strftime("%Y%m%d"), f"INV{i}-{n}", f"${amount:,.2f}"))
    return rows


def test_the_job_segments_transactions_in_rfm_terms(spark, tmp_path):
    path = tmp_path / "transactions.csv"
    frame = pd.DataFrame(planted_transactions(), columns=["Customer ID", "Invoice Date", "Invoice", "Amount"])
    frame.to_csv(path, index=False)
    output = str(tmp_path / "out")
    config = small_config(**{
        "input.kind": "transactions", "input.path": str(path), "input.format": "csv",
        "input.id_col": "Customer ID", "input.transactions.date_col": "Invoice Date",
        "input.transactions.amount_col": "Amount", "input.transactions.order_col": "Invoice",
        "input.transactions.date_format": "yyyyMMdd", "k.max": 5, "k.fixed": 3, "output.path": output,
    })
    manifest = run_segmentation(spark, config)
    assert manifest["features"] == ["recency_days", "frequency", "monetary"]
    assert manifest["transactions"]["transactions"] == len(frame)
    assert manifest["transactions"]["reference_date"] == "2025-01-01"
    assert manifest["labelled_rows"] == 300
    names = {s["segment_name"] for s in manifest["segments"]}
    assert names == {"Champions", "Hibernating", "New"}
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert list(labels.columns[:4]) == ["Customer ID", "segment_name", "distance", "recency_days"]
    assert {"frequency", "monetary", "avg_order_value", "tenure_days"} <= set(labels.columns)
    by_name = labels.groupby("segment_name")
    assert by_name["frequency"].min()["Champions"] == 20
    assert by_name["frequency"].max()["New"] == 1
    assert by_name["recency_days"].min()["Hibernating"] > 200
    # Profiles and the log1p dimensions: monetary's centroid is back in money, not in log units.
    profiles = pd.read_parquet(os.path.join(output, "profiles")).set_index("segment_name")
    assert 150 * 20 * 0.8 < profiles.loc["Champions", "monetary_centroid"] < 250 * 20 * 1.2
    with open(os.path.join(output, "manifest.json"), encoding="utf-8") as handle:
        scaling = json.load(handle)["scaling"]
    assert scaling["monetary"]["steps"] == [["log1p"]] and scaling["recency_days"]["steps"] == []
    # The saved model scores the same transactions into the same segments.
    scored = score_customers(spark, os.path.join(output, "model"), config.input, str(tmp_path / "scored"))
    assert scored["labelled_rows"] == 300 and scored["transactions"]["reference_date"] == "2025-01-01"
    again = pd.read_parquet(tmp_path / "scored" / "labels").set_index("Customer ID").sort_index()
    assert again["segment"].astype(int).equals(labels.set_index("Customer ID").sort_index()["segment"].astype(int))
    assert list(again.columns) == list(labels.set_index("Customer ID").columns)


def test_labels_keep_every_rfm_column_when_a_feature_has_no_variance(spark, tmp_path):
    # Every customer bought once: frequency is 1 everywhere and is dropped as a feature by policy.
    rows = [(f"c{i}", D(2024, 1, 1) + datetime.timedelta(days=i % 30), f"o{i}", 10.0 + (i % 7) * 30)
            for i in range(60)]
    path = str(tmp_path / "once")
    spark.createDataFrame(rows, TRANSACTIONS).write.parquet(path)
    output = str(tmp_path / "out")
    manifest = run_segmentation(spark, small_config(**{
        "input.kind": "transactions", "input.path": path, "input.transactions.order_col": "invoice",
        "input.zero_variance": "drop", "k.max": 3, "k.fixed": 2, "output.path": output,
    }))
    assert manifest["dropped_features"] == ["frequency"]
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert set(labels.columns) >= {"recency_days", "frequency", "monetary", "avg_order_value", "tenure_days"}
    assert labels["frequency"].eq(1).all()
