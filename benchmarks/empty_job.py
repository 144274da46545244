"""The empty job: what Spark costs before any work, the 1M-row fixed-cost target's yardstick.

Submitted with ./spark-submit.sh like the job: starts a session, counts one row, stops.

    ./spark-submit.sh benchmarks/empty_job.py
"""

from pyspark.sql import SparkSession

if __name__ == "__main__":
    spark = SparkSession.builder.appName("empty-job").getOrCreate()
    assert spark.range(1).count() == 1
    spark.stop()
