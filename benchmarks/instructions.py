"""(b) without the noise: CPU instructions a row, bulkmeet's pipeline versus the script.

    python -m benchmarks.instructions [--rows 1000,3000]

Each client runs under valgrind's callgrind against its own sandbox process (the sandbox itself
is not counted), once with each row count. Instructions a row = the difference between the two
totals divided by the difference in rows, so start-up (imports, the TLS context) cancels out.
Callgrind counts user-space instructions, not seconds: the count is the same whatever else the
machine is doing, where rows/s on a shared machine moves by ±20% from run to run. It leaves
out time in the kernel (bulkmeet makes two write(2) calls a row for its journal, ~2 µs each).
Needs valgrind; takes about three minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import ROOT, SandboxProcess, child_env, client_args, write_input

_COLLECTED = re.compile(rb"Collected : (\d+)")


def count(args: list[str], cwd: Path) -> int:
    """User-space instructions of `python args...` under callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.devnull}",
         sys.executable, *args],
        cwd=cwd, env=child_env(PYTHONHASHSEED="0"), capture_output=True, timeout=1800,
        check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{args[:2]} under callgrind exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')[-2000:]}")
    return int(found.group(1))


def per_row(who: str, work: Path, sizes: tuple[int, int]) -> float:
    totals = []
    for rows in sizes:
        input_path = write_input(work / f"instructions-{rows}.csv", rows)
        out = work / f"instructions-{who}.jsonl"
        with SandboxProcess(rate=None, log_limit=0) as sb:
            totals.append(count(client_args(who, sb.url, input_path, out), ROOT))
            sb.stop()
    return (totals[1] - totals[0]) / (sizes[1] - sizes[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000,3000", help="two row counts (default 1000,3000)")
    args = parser.parse_args(argv)
    small, large = (int(n) for n in args.rows.split(","))
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing measured", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="bulkmeet-instr-") as tmp:
        hand = per_row("hand", Path(tmp), (small, large))
        bulk = per_row("bulk", Path(tmp), (small, large))
    print(f"(b) instructions a row, {small} -> {large} rows, concurrency 8, no rate limit")
    print(f"    hand-written script: {hand:10,.0f}")
    print(f"    bulkmeet pipeline:   {bulk:10,.0f}")
    print(f"    script / bulkmeet:   {hand / bulk:10.3f}   (the rows/s ratio a client-bound run "
          "would show)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
