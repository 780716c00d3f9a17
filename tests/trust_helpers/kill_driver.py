"""Run one Thresher job in a subprocess that pauses at a named write, so a test can SIGKILL it
at an exact point of its work (no sleeps, no timing guesses).

Usage::

    THRESHER_TEST_PAUSE_AT='*/values.npy' python kill_driver.py embed RUN
    THRESHER_TEST_PAUSE_AT='*/result.parquet' python kill_driver.py cli filter RUN ...
    THRESHER_TEST_PAUSE_AT='*/compare/random-keep50.json' python kill_driver.py compare RUN
    THRESHER_TEST_PAUSE_AT='*/sweep/T/seed-1.json' python kill_driver.py evaluate RUN

When the job is about to rename a finished temporary file onto a path matching the pattern
(``fnmatch``), it prints ``PAUSED <path>`` on stdout and sleeps: the temporary file is on disk,
complete, and not yet in place: the worst moment to die. The test then kills it.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time

PAUSE_ENV = "THRESHER_TEST_PAUSE_AT"
PAUSED = "PAUSED"


def install_pause() -> None:
    pattern = os.environ.get(PAUSE_ENV)
    if not pattern:
        return
    real_replace = os.replace

    def replace(src: str, dst: str, *args: object, **kwargs: object) -> None:
        if fnmatch.fnmatch(os.fspath(dst), pattern):
            sys.stdout.write(f"{PAUSED} {os.fspath(dst)}\n")
            sys.stdout.flush()
            time.sleep(3600)  # the test kills us here
        real_replace(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    os.replace = replace  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    install_pause()
    job, *rest = argv
    if job == "cli":
        from thresher.cli import main as cli_main

        sys.argv = ["thresher", *rest]
        cli_main()
    elif job == "embed":
        from thresher.workflows.embed import embed_run
        from thresher.workflows.run import open_run

        embed_run(open_run(rest[0]))
    elif job == "compare":
        from thresher.workflows.compare import compare_run
        from thresher.workflows.run import open_run

        compare_run(open_run(rest[0]), methods=("random",), keeps=(0.5,), seeds=2, epochs=1)
    elif job == "evaluate":
        from thresher.workflows.evaluate import evaluate_run
        from thresher.workflows.run import open_run

        evaluate_run(open_run(rest[0]), subset_ids=None, seeds=3, epochs=1, name="T")
    else:
        raise SystemExit(f"unknown job {job!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
