"""Label new customers with a saved segment model.

    ./spark-submit.sh jobs/score.py --model OUTPUT/model --input PATH --output PATH2 \
        [--input-format parquet|csv|json|table] [--id-col NAME] [--config conf/local.yaml] \
        [--input-kind transactions] [--set KEY=VALUE ...]

A model fitted on transactions scores transactions (``--input-kind transactions``, with the
columns under ``input.transactions.*``): the RFM columns are built first, as the segment
job builds them, to the new data's own reference date unless one is set.

Writes PATH2/labels/segment=<n>/ (the segment job's layout), PATH2/manifest.json and
PATH2/_SUCCESS, published atomically. Exit codes as the segment job: 0, 2 (bad input,
one ``error:`` line), 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from segmentation.cli import Parser, report_error
from segmentation.config import INPUT_KINDS, load_config, parse_override
from segmentation.errors import InputError
from segmentation.logs import configure_logging

log = logging.getLogger("score")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="score.py", description="Label customers with a saved segment model.")
    parser.add_argument("--model", required=True, help="the model/ directory of a segment run")
    parser.add_argument("--input", required=True)
    parser.add_argument("--input-format", choices=["parquet", "csv", "json", "table"])
    parser.add_argument("--id-col", help="default: the id column of the run that made the model")
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", default=None, help="YAML config: Spark properties, CSV options")
    parser.add_argument("--input-kind", choices=INPUT_KINDS,
                        help="transactions: build the RFM columns first (input.transactions.* set the columns)")
    parser.add_argument("--prediction-model", metavar="PATH",
                        help="transactions: the prediction_model/ of a segment run with --predict-days")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set input.transactions.order_col=invoice")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    configure_logging("score")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        overrides = dict(parse_override(item) for item in args.set)
        if args.input_kind:
            overrides["input.kind"] = args.input_kind
        config = load_config(args.config, overrides)
    except InputError as exc:
        return report_error(exc)

    from segmentation.session import boot_jvm, job_session

    boot_jvm()  # the JVM starts while the scoring modules import
    from segmentation.score import run_id_col, score_customers

    id_col = args.id_col or run_id_col(args.model) or config.input.id_col
    input_cfg = replace(config.input, path=args.input, format=args.input_format or config.input.format,
                        id_col=id_col)
    with job_session(config) as spark:
        try:
            manifest = score_customers(spark, args.model, input_cfg, args.output,
                                       config.output.max_rows_per_file, args.prediction_model, config.report)
        except InputError as exc:
            return report_error(exc)
        except Exception:  # noqa: BLE001
            log.exception("scoring failed")
            return 1
    print(f"scored {manifest['labelled_rows']} customers into {args.output}/labels "
          f"({manifest['dropped_rows']} dropped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
