"""What the baselines share: the synthetic data's features, their command line, and the profile."""

from __future__ import annotations

import argparse

import pandas as pd

from segmentation import synthetic

FEATURES = list(synthetic.FEATURES)  # the columns jobs/generate.py writes; a list, as pandas wants
SILHOUETTE_ROWS = 20_000  # as the job's elbow.silhouette_rows
SAMPLE_ROWS = 50_000  # as the job's elbow.sample_rows


def arguments() -> argparse.ArgumentParser:
    """INPUT OUTPUT RESULT.json [--k-min 2] [--k-max 10] [--seed 1]; a baseline adds its own."""
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("result")
    parser.add_argument("--k-min", type=int, default=2)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    return parser


def profile(labelled: pd.DataFrame) -> pd.DataFrame:
    """One row per segment: customers, share, and per feature its mean, median, min and max."""
    grouped = labelled.groupby("segment")[FEATURES]
    table = grouped.agg(["mean", "median", "min", "max"])
    table.columns = [f"{feature}_{stat}" for feature, stat in table.columns]
    table.insert(0, "customers", grouped.size())
    table.insert(1, "share", table["customers"] / len(labelled))
    return table.reset_index()
