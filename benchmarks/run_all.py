"""Run the benchmarks in this folder one after another (what `make bench` does) and print their result lines.

    python benchmarks/run_all.py [--quick] [--only speed_pipeline,memory_4k,torch_backend]

Each benchmark runs in its own process (peak memory and thread pools must not carry over from one to the next),
with sizes small enough for a 2-core machine; --quick makes them smaller still (a smoke run: the ratios are then
noisier). Run a script by itself for the published numbers (docs/BENCHMARKS.md gives their arguments).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# script -> (default arguments, --quick arguments); the scripts' own defaults are the published, longer runs.
BENCHMARKS = {
    "speed_pipeline": (["--frames", "48", "--repeats", "2"], ["--frames", "12", "--repeats", "1"]),
    "memory_4k": (["--short", "30", "--long", "150"], ["--short", "8", "--long", "24"]),
    "torch_backend": (["--frames", "10", "--repeats", "2"], ["--frames", "4", "--repeats", "1"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the benchmarks)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks to run")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    failed = []
    for name in names:
        extra = BENCHMARKS[name][1 if args.quick else 0]
        print(f"== {name} {' '.join(extra)}", flush=True)
        # Progress goes to stderr and result lines to stdout, both passed straight through.
        if subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
