"""Synthetic customers with planted segments, or their transactions, written as Parquet (or CSV).

    ./spark-submit.sh jobs/generate.py --rows N --output PATH [--seed S] [--segments K] [--partitions P]
    ./spark-submit.sh jobs/generate.py --rows N --output PATH --period 2 [--moved 0.1] [--left 0.05] [--joined 0.05]
    ./spark-submit.sh jobs/generate.py --kind transactions --rows N --customers M --output PATH

``--period P`` writes period P of the same customers (same --rows, --seed and --segments): some
moved to another segment, some left, some are new; ``true_segment`` and ``first_period`` hold the
truth, so joining two periods on ``customer_id`` tells who moved where.

Rows are made on the executors from spark.range: the driver never holds them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from segmentation.cli import Parser, report_error
from segmentation.config import load_config
from segmentation.errors import InputError
from segmentation.logs import configure_logging
from segmentation.read import is_local_path, local_path
from segmentation.synthetic import MAX_SEGMENTS, Period

log = logging.getLogger("generate")



def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="generate.py", description="Generate synthetic customers.")
    parser.add_argument("--kind", choices=["customers", "transactions"], default="customers")
    parser.add_argument("--rows", type=int, required=True, help="customers, or transactions with --kind transactions")
    parser.add_argument("--customers", type=int, help="transactions: how many customers (default rows / 10)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--segments", type=int, default=5, help=f"planted segments, 1..{MAX_SEGMENTS}")
    parser.add_argument("--partitions", type=int, help="partitions (and files) to write")
    parser.add_argument("--period", type=int, default=1, help="customers: this period of the same customers (1, 2, ...)")
    parser.add_argument("--moved", type=float, default=Period.moved,
                        help="customers: each later period, the share who move to another segment (default %(default)s)")
    parser.add_argument("--left", type=float, default=Period.left,
                        help="customers: each later period, the share who leave (default %(default)s)")
    parser.add_argument("--joined", type=float, default=Period.joined,
                        help="customers: each later period, new customers as a share of --rows (default %(default)s)")
    parser.add_argument("--move-to", type=int, help="customers: the planted segment index every mover goes to "
                                                    "(default: drawn by the segments' shares)")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--config", default=None, help="YAML config for the Spark properties")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    configure_logging("generate")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.rows < 1:
            raise InputError(f"--rows must be at least 1, got {args.rows}")
        if not 1 <= args.segments <= MAX_SEGMENTS:
            raise InputError(f"--segments must be between 1 and {MAX_SEGMENTS}, got {args.segments}")
        if args.period < 1:
            raise InputError(f"--period must be at least 1, got {args.period}")
        for flag, share in (("--moved", args.moved), ("--left", args.left), ("--joined", args.joined)):
            if not 0.0 <= share <= 1.0:
                raise InputError(f"{flag} must be a share between 0 and 1, got {share}")
        if args.move_to is not None and not 0 <= args.move_to < args.segments:
            raise InputError(f"--move-to must be a planted segment index, 0..{args.segments - 1}, got {args.move_to}")
        if args.partitions is not None and args.partitions < 1:
            raise InputError(f"--partitions must be at least 1, got {args.partitions}")
        if (not args.overwrite and is_local_path(args.output)
                and os.path.exists(local_path(args.output))):
            raise InputError(f"output {args.output} exists; pass --overwrite to replace it")
        config = load_config(args.config)
    except InputError as exc:
        return report_error(exc)

    from segmentation.session import job_session
    from segmentation.synthetic import generate_customers, generate_transactions

    with job_session(config) as spark:
        try:
            if args.kind == "transactions":
                customers = max(1, args.customers or args.rows // 10)
                rows = generate_transactions(spark, args.rows, customers, args.seed, args.partitions)
            else:
                period = Period(args.period, args.moved, args.left, args.joined, args.move_to)
                rows = generate_customers(spark, args.rows, args.segments, args.seed, args.partitions, period)
            writer = rows.write.mode("overwrite" if args.overwrite else "errorifexists")
            if args.format == "csv":
                writer.option("header", True).csv(args.output)
            else:
                writer.parquet(args.output)
        except Exception:  # noqa: BLE001
            log.exception("generating customers failed")
            return 1
    if args.kind == "transactions":
        print(f"wrote {args.rows} transactions to {args.output}")
    elif args.period > 1:
        print(f"wrote period {args.period} of {args.rows} customers in {args.segments} segments "
              f"(movers, leavers and newcomers applied) to {args.output}")
    else:
        print(f"wrote {args.rows} customers in {args.segments} segments to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
