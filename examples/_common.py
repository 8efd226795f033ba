"""What both ERA5 examples share: flags, the synthetic input, Beam flags."""

from __future__ import annotations

import argparse
import os
import time

from xarray_beam import synthetic

OUTPUT_DIR = "era5_output"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        help="the ERA5 Zarr store to read (path or URL); default: a synthetic "
        "ERA5-like store written first into --output-dir",
    )
    parser.add_argument(
        "--output-dir",
        default=OUTPUT_DIR,
        help=f"where default outputs go (default {OUTPUT_DIR}/)",
    )
    parser.add_argument(
        "--hours", type=int, default=24 * 62, help="synthetic input: time steps"
    )
    parser.add_argument(
        "--resolution",
        type=float,
        default=2.5,
        help="synthetic input: grid spacing in degrees",
    )
    parser.add_argument(
        "--mode",
        choices=("w-", "w", "r+"),
        help="output store mode (default: w for the default output, which is "
        "replaced on every run; w- otherwise, which refuses an existing store)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into the existing output, skipping "
        "what is already written",
    )


def parse(parser: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, list]:
    """Our flags, and the rest for Beam (everything after '--' too)."""
    args, beam_args = parser.parse_known_args(argv)
    return args, [a for a in beam_args if a != "--"]


def input_store(args: argparse.Namespace) -> str:
    """The input store: --input, or a synthetic ERA5-like one written now."""
    if args.input:
        return args.input
    path = os.path.join(args.output_dir, "era5_like.zarr")
    start = time.perf_counter()
    synthetic.write_era5_like(
        path, hours=args.hours, resolution=args.resolution, mode="w"
    )
    print(
        f"wrote a synthetic ERA5-like input to {path} "
        f"({time.perf_counter() - start:.1f} s); pass --input to use real data"
    )
    return path


def output_mode(args: argparse.Namespace, output_given: bool) -> str | None:
    """The output store mode: as asked, else 'w' for our own default output
    (but never when resuming, which writes into what is there)."""
    if args.resume:
        return args.mode
    return args.mode if args.mode or output_given else "w"
