"""Benchmarks of issue 4: pacing, overhead, memory and 429 recovery, in one command.

    .venv/bin/python -m benchmarks.run            # the full run, a few minutes
    .venv/bin/python -m benchmarks.run --quick    # a smoke run of a few seconds

Not part of the test suite's pass/fail: it prints figures against the targets (BENCHMARKS.md).
Every sandbox and every client runs in its own process, so no two share an event loop.
"""
