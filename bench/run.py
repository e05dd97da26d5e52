"""Benchmarks of chat-migrate: API calls, throughput, rate-limit use, faults, planning memory.

    .venv/bin/python bench/run.py [--quick] [--json] [--only SCENARIO ...]

Generates seeded synthetic data in a temporary directory, runs each scenario (the local server
as a `migrate serve` child process, each measured workload in a child process of its own) and
prints one line per result: the figure, its ratio to a reference measured in the same run (or
to what the protocol allows), the target and whether it is met. `--json` prints one JSON
document instead. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (`python bench/run.py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import Result
from bench.scenarios import SCALES, SCENARIOS, BenchError


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; exit 0 when every target is met, 1 otherwise, 2 on error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller runs (under 5 minutes).")
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        help="Run size (overrides --quick); `tiny` only checks that every scenario still runs.",
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SCENARIOS),
        metavar="SCENARIO",
        help=f"Run only these scenarios ({', '.join(SCENARIOS)}).",
    )
    parser.add_argument("--seed", type=int, default=7, help="Seed of the synthetic data.")
    parser.add_argument("--workdir", type=Path, help="Keep data and jobs here (default: temp).")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale or ("quick" if args.quick else "full")]
    chosen = args.only or list(SCENARIOS)

    started = time.monotonic()
    document: dict[str, Any] = {
        "command": " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scale": scale.name,
        "machine": machine(),
        "results": [],
        "errors": {},
        "seconds": {},
    }
    with tempfile.TemporaryDirectory(prefix="migrate-bench-") as temporary:
        root = args.workdir or Path(temporary)
        for name in chosen:
            workdir = root / name
            workdir.mkdir(parents=True, exist_ok=True)
            print(f"-- {name} ({scale.name})", file=sys.stderr, flush=True)
            began = time.monotonic()
            try:
                results: list[Result] = SCENARIOS[name](scale, workdir, seed=args.seed)
            except BenchError as exc:
                document["errors"][name] = str(exc)
                print(f"{name}: FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            finally:
                document["seconds"][name] = round(time.monotonic() - began, 1)
            for result in results:
                document["results"].append(result.model_dump(mode="json"))
                if not args.json:
                    print(result.line(), flush=True)
    document["seconds"]["total"] = round(time.monotonic() - started, 1)
    document["machine"]["load_average_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(f"total {document['seconds']['total']} s; load average {os.getloadavg()}")
    if document["errors"]:
        return 2
    met = [result["met"] for result in document["results"]]
    return 1 if False in met else 0


if __name__ == "__main__":
    sys.exit(main())
