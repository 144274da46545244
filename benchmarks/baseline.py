"""What the two baselines share: the synthetic data's features and their command line."""

from __future__ import annotations

import argparse

from segmentation import synthetic

FEATURES = list(synthetic.FEATURES)  # the columns jobs/generate.py writes; a list, as pandas wants


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
