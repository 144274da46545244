"""The segment job: read customers, sweep K, label, profile and publish segments.

    ./spark-submit.sh jobs/segment.py [--config conf/local.yaml] [--input PATH] ...

Exit codes: 0 done; 2 bad input or config (one ``error:`` line on stderr, nothing
written to OUTPUT); 3 the segments drifted and --fail-on-drift is set (one ``error:`` line,
nothing written to OUTPUT); 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from segmentation.cli import EXIT_DRIFT, Parser, report_error
from segmentation.config import ALGORITHMS, INPUT_KINDS, OUTPUT_FORMATS, load_config, parse_override
from segmentation.errors import DriftError, InputError
from segmentation.logs import configure_logging

log = logging.getLogger("segment")

DEFAULT_CONFIG = "conf/local.yaml"



def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="segment.py", description="Customer segmentation with spark.ml KMeans.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default %(default)s)")
    parser.add_argument("--input", help="input path, or table name with --input-format table")
    parser.add_argument("--input-format", choices=["parquet", "csv", "json", "table"])
    parser.add_argument("--input-kind", choices=INPUT_KINDS,
                        help="customers (one row each, the default) or transactions (RFM features are built)")
    parser.add_argument("--id-col", "--customer-col", dest="id_col", help="the customer id column")
    parser.add_argument("--date-col", help="transactions: the date column")
    parser.add_argument("--amount-col", help="transactions: the amount column (returns are negative)")
    parser.add_argument("--order-col", help="transactions: the order column (default: count purchase dates)")
    parser.add_argument("--date-format", help="transactions: a Spark datetime pattern, e.g. yyyyMMdd")
    parser.add_argument("--reference-date", help="transactions: YYYY-MM-DD (default: last date plus one day)")
    parser.add_argument("--features", help='comma-separated feature columns, e.g. "age,spending"')
    parser.add_argument("--output", help="where the outputs are published")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS,
                        help="parquet (the default: plain Parquet, each run swapped in) or delta "
                             "(Delta Lake tables, one version per run; needs the delta extra)")
    parser.add_argument("--k-min", type=int)
    parser.add_argument("--k-max", type=int)
    parser.add_argument("--k", type=int, help="use this K instead of choosing it from the elbow")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--algorithm", choices=ALGORITHMS,
                        help="kmeans (default), bisecting (BisectingKMeans), gmm (GaussianMixture, K by BIC)")
    parser.add_argument("--predict-days", type=int, metavar="H",
                        help="transactions: predict each customer's next H days (90: a quarter)")
    parser.add_argument("--no-report", action="store_true", help="skip the plots")
    parser.add_argument("--previous", metavar="PATH|none",
                        help="the run whose segments this one carries on (default: the one at --output; "
                             "none: a new lineage)")
    parser.add_argument("--fail-on-drift", action="store_true",
                        help="publish nothing and exit 3 when the segments drifted from the previous run")
    parser.add_argument("--mlflow", action="store_true",
                        help="log the run to MLflow (MLFLOW_TRACKING_URI; needs the mlflow extra)")
    parser.add_argument("--remote", help="a Spark Connect server, sc://host:port (default: SPARK_REMOTE)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set elbow.parallelism=8 (repeatable)")
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict:
    flags = {
        "input.path": args.input,
        "input.format": args.input_format,
        "input.kind": args.input_kind,
        "input.id_col": args.id_col,
        "input.transactions.date_col": args.date_col,
        "input.transactions.amount_col": args.amount_col,
        "input.transactions.order_col": args.order_col,
        "input.transactions.date_format": args.date_format,
        "input.transactions.reference_date": args.reference_date,
        "input.features": args.features,
        "output.path": args.output,
        "output.format": args.output_format,
        "k.min": args.k_min,
        "k.max": args.k_max,
        "k.fixed": args.k,
        "seed": args.seed,
        "algorithm": args.algorithm,
        "predict.days": args.predict_days,
        "report.enabled": False if args.no_report else None,
        "mlflow.enabled": True if args.mlflow else None,
        "lineage.previous": args.previous,
        "drift.fail_on_drift": True if args.fail_on_drift else None,
    }
    result = dict(parse_override(item) for item in args.set)
    result.update({key: value for key, value in flags.items() if value is not None})
    return result


def config_path(path: str) -> str | None:
    """The default config also resolves from outside the project directory; an installed
    package without the project beside it runs on the defaults of segmentation/config.py."""
    if path == DEFAULT_CONFIG and not os.path.exists(path):
        beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", path)
        if os.path.exists(beside):
            return beside
        if not os.path.exists(os.path.basename(path)):  # nor shipped with --files
            return None
    return path


def main(argv: list[str] | None = None) -> int:
    configure_logging("segment")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(config_path(args.config), overrides(args))
    except InputError as exc:
        return report_error(exc)

    from segmentation.session import boot_jvm, job_session  # Spark is imported only once config is good

    boot_jvm(args.remote)  # the JVM starts while the job's modules import
    from segmentation.job import run_segmentation

    with job_session(config, args.remote) as spark:
        try:
            manifest = run_segmentation(spark, config)
        except InputError as exc:
            return report_error(exc)
        except DriftError as exc:
            return report_error(exc, EXIT_DRIFT)
        except Exception:  # noqa: BLE001 - anything else is a failure of ours or the cluster's
            log.exception("the segment job failed")
            return 1
    print(f"published {manifest['chosen_k']} segments of {manifest['labelled_rows']} customers "
          f"to {config.output.path}")
    if config.report.enabled:
        print(f"report: {manifest['outputs']['report']}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
