from chispa import assert_df_equality
from pyspark.sql import functions as F

from segmentation.synthetic import ARCHETYPES, Period, generate_customers


def test_same_seed_same_rows_whatever_the_partitioning(spark):
    one = generate_customers(spark, 3000, segments=4, seed=3, partitions=1)
    five = generate_customers(spark, 3000, segments=4, seed=3, partitions=5)
    assert_df_equality(one, five, ignore_row_order=True)
    other_seed = generate_customers(spark, 3000, segments=4, seed=4, partitions=1)
    assert one.exceptAll(other_seed).count() > 2900


def test_columns_types_and_planted_segments(spark):
    df = generate_customers(spark, 20000, segments=5, seed=1, partitions=2)
    assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == [
        ("customer_id", "bigint"),
        ("age", "int"),
        ("annual_income", "double"),
        ("spending", "double"),
        ("purchase_frequency", "int"),
        ("true_segment", "int"),
        ("first_period", "int"),
    ]
    stats = {
        r["true_segment"]: r
        for r in df.groupBy("true_segment")
        .agg(F.count("*").alias("n"), F.avg("spending").alias("spending"), F.avg("age").alias("age"))
        .collect()
    }
    assert sorted(stats) == [0, 1, 2, 3, 4]
    shares = [a[1] for a in ARCHETYPES[:5]]
    for segment, row in stats.items():
        assert abs(row["n"] / 20000 - shares[segment] / sum(shares)) < 0.015
        assert abs(row["spending"] - ARCHETYPES[segment][4][0]) < 0.05 * ARCHETYPES[segment][4][0]
    assert df.agg(F.min("customer_id"), F.max("customer_id"), F.countDistinct("customer_id")).first() == (1, 20000, 20000)
    assert df.where("age < 18 OR spending < 0 OR purchase_frequency < 0").count() == 0


def test_a_later_period_keeps_most_customers_as_they_were_and_moves_leaves_and_adds_the_planted_shares(spark):
    rows = 20000
    first = generate_customers(spark, rows, segments=5, seed=2).toPandas().set_index("customer_id")
    second = generate_customers(spark, rows, segments=5, seed=2,
                                period=Period(2, moved=0.2, left=0.1, joined=0.05)).toPandas().set_index("customer_id")
    stayed = first.index.intersection(second.index)
    assert abs(len(stayed) / rows - 0.9) < 0.01  # 10% left
    newcomers = second[second["first_period"] == 2]
    assert len(newcomers) == rows * 0.05 and newcomers.index.min() == rows + 1
    assert (second.loc[stayed, "first_period"] == 1).all()
    changed = first.loc[stayed, "true_segment"] != second.loc[stayed, "true_segment"]
    # Movers go to a segment drawn by the shares, which is sometimes the same one: 20% x (1 - its share).
    assert 0.12 < changed.mean() < 0.18
    same = stayed[~changed.to_numpy()]
    features = ["age", "annual_income", "spending", "purchase_frequency"]
    assert first.loc[same, features].equals(second.loc[same, features])  # who stays keeps every value
    moved = stayed[changed.to_numpy()]
    for segment, group in second.loc[moved].groupby("true_segment"):  # movers take their new segment's values
        assert abs(group["spending"].mean() - ARCHETYPES[segment][4][0]) < 0.1 * ARCHETYPES[segment][4][0]

    # Period 3 follows period 2: who left in period 2 stays gone; movers may all go to one segment.
    third = generate_customers(spark, rows, segments=5, seed=2,
                               period=Period(3, moved=0.2, left=0.1, joined=0.05, move_to=4)).toPandas().set_index("customer_id")
    assert not third.index.difference(second.index).difference(third.index[third["first_period"] == 3]).size
    assert (third["true_segment"] == 4).mean() > (second["true_segment"] == 4).mean() + 0.1
