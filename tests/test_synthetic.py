from chispa import assert_df_equality
from pyspark.sql import functions as F

from segmentation.synthetic import ARCHETYPES, generate_customers


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
