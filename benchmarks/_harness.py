"""Shared benchmark machinery: each method runs in its own process.

A method is a function ``(source, target, args) -> seconds`` (timed inside
the process, after imports). The parent prints seconds, MB/s, the ratio to a
reference method and the peak RSS of the method's process tree.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

Method = Callable[[str, str, Any], float]


def peak_rss_mb() -> float:
    """Peak RSS of this process plus the largest of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def run_child(methods: dict[str, Method], args: Any) -> None:
    """In the child process: run one method and print its result as JSON."""
    target = os.path.join(args.workdir, f"out_{args.method}.zarr")
    shutil.rmtree(target, ignore_errors=True)
    result = methods[args.method](args.source, target, args)
    if not isinstance(result, dict):
        result = {"seconds": result}
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    shutil.rmtree(target, ignore_errors=True)


def run_all(
    script: str, methods: list[str], source: str, nbytes: int, argv: list[str]
) -> dict[str, dict]:
    """Run every method in a fresh process; print and return the table."""
    results = {}
    for method in methods:
        done = subprocess.run(
            [sys.executable, script, *argv, "--method", method, "--source", source],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            print(f"{method} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        results[method] = json.loads(done.stdout.strip().splitlines()[-1])
    reference = results[methods[0]]["seconds"] if methods[0] in results else 1.0
    print(
        f"{'method':<22}{'seconds':>9}{'MB/s':>8}{'x ' + methods[0]:>14}"
        f"{'peak RSS MB':>13}{'projected MB':>14}"
    )
    for method, r in results.items():
        projected = r.get("projected_mb")
        print(
            f"{method:<22}{r['seconds']:>9.2f}{nbytes / 1e6 / r['seconds']:>8.0f}"
            f"{r['seconds'] / reference:>14.2f}{r['peak_rss_mb']:>13.0f}"
            f"{'' if projected is None else f'{projected:.0f}':>14}"
        )
    return results
