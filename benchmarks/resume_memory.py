"""Peak RSS of `bulkmeet run` resuming a finished run of N rows (issue 14: under 100 MB at 1M).

    python -m benchmarks.resume_memory [--rows 1000000] [--work DIR]

Writes N made-up rows (content-hash keys, the longest bulkmeet keeps), creates them all with the
pipeline and a stand-in client (`benchmarks.bulk --local`: a minute for a million, not 4 days at
3/s), then runs the real command line on the same input and results file, the way a user resumes
a run. Every row is settled by the first run, so the resume must send nothing and write nothing;
its peak RSS is read from the kernel for that one child (os.wait4). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from .common import ROOT, child_env, run_json, weigh_bulkmeet, write_config


def resume(work: Path, rows: int) -> dict[str, Any]:
    input_path, out = work / "resume.csv", work / "resume.results.jsonl"
    first = run_json(["-m", "benchmarks.bulk", str(input_path), str(out), "--local",
                      "--generate", str(rows)], cwd=work, timeout=300 + rows / 500)
    if first["counts"] != {"created": rows}:
        raise RuntimeError(f"the first run did not create every row: {first['counts']}")
    size = out.stat().st_size
    # Nothing answers on port 9: a request the resume should not make fails at once, and shows.
    config = write_config(work / "resume.yaml", base_url="http://127.0.0.1:9")
    done = weigh_bulkmeet(["run", str(input_path), "--config", str(config), "--out", str(out),
                           "--quiet", "--log-format", "json"], cwd=work,
                          env=child_env(XDG_STATE_HOME=str(work / "state")),
                          said=work / "resume.output")
    if done.code != 0 or out.stat().st_size != size:
        raise RuntimeError(f"the resume exited {done.code} or wrote to the results file:\n"
                           f"{done.output[-3000:]}")
    return {"rows": rows, "results_mb": round(size / 2**20, 1), "resume_s": done.seconds,
            "resume_peak_rss_mb": done.peak_mb, "first_run_peak_rss_mb": first["peak_rss_mb"],
            "exit": done.code}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resume_memory")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the input and results (default: a temporary one; "
                             "a million rows take ~500 MB)")
    args = parser.parse_args(argv)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        report = resume(args.work, args.rows)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = resume(Path(tmp), args.rows)
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")


if __name__ == "__main__":
    if not __package__:
        sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
