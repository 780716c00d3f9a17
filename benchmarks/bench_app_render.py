"""Time to first render of the app's overview and point cloud: this checkout against a reference
commit, side by side in one process (issue 18).

    THRESHER_DATA=../shared/data .venv/bin/python benchmarks/bench_app_render.py
    ... --reference ca7edd9 --repeats 3 --out benchmarks/results/app_render.json

Both versions serve the same run directories from their own source tree (the reference is
unpacked with ``git archive``), each in its own server process; Debian's Chromium (headless,
software GL through SwiftShader, as on a machine without a GPU) opens each view in a fresh
browser context (cold caches), alternating reference and current, and reads
``performance.now()`` (milliseconds since the navigation started) when:

- overview: the summary cards are on the page;
- cloud: the plot's legend is drawn and one animation frame has passed (the reference draws
  with plotly, whose legend follows the plot; the current app draws the points, then the
  legend, in one frame).

Runs: the demo's size (1,438 training digits, a real model and filter) and 50,000 MNIST images
with a synthetic filter result (``tests/app_runs.py``). Figures are medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SERVER = (
    "import sys, uvicorn\n"
    "from thresher.app.server import create_app\n"
    "uvicorn.run(create_app(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]),"
    " log_level='warning')\n"
)
# selectors, not script: the current app's policy forbids the eval behind wait_for_function
OVERVIEW_READY = "#overview-summary .card"
CLOUD_READY = "#cloud-plot .legendtext, #cloud-legend .entry"  # plotly's legend, or cloud.js's


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``thresher app`` from the source tree ``src`` over ``run_dir``, in its own process."""

    def __init__(self, src: Path, run_dir: Path) -> None:
        self.port = _port()
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(run_dir), str(self.port)], env=env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server from {src} exited") from None
                time.sleep(0.1)
        raise RuntimeError(f"the server from {src} did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _measure(browser: Any, url: str, ready: str) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_selector(ready, state="attached")
        return float(
            page.evaluate(
                "() => new Promise(r => requestAnimationFrame(() => r(performance.now())))"
            )
        )
    finally:
        context.close()


def build_runs(root: Path, data_root: Path) -> dict[str, Path]:
    """The demo-sized run (real model and filter) and the 50,000-point one."""
    sys.path.insert(0, str(ROOT / "tests"))
    from app_runs import synthetic_cloud_run
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run

    demo = root / "demo"
    train_run(demo, data=DataSpec(name="digits"), model="mnist_lenet", epochs=1, overwrite=True)
    run_filter(open_run(demo), FilterSettings(outliers=0.05, similar=0.05), device="cpu")
    return {"1438": demo, "50000": synthetic_cloud_run(root, data_root, n=50_000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default="ca7edd9", help="commit to compare against")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="JSON to write")
    args = parser.parse_args()
    data_root = Path(os.environ.get("THRESHER_DATA", ROOT.parent / "shared" / "data"))
    if not CHROMIUM.exists():
        sys.exit("needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="thresher-render-") as tmp:
        tmp_path = Path(tmp)
        ref_src = tmp_path / "reference"
        ref_src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.reference, "src"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(ref_src)], input=archive, check=True)
        versions = {"reference": ref_src / "src", "current": ROOT / "src"}
        t0 = time.perf_counter()
        runs = build_runs(tmp_path / "runs", data_root)
        print(f"runs built in {time.perf_counter() - t0:.0f} s", flush=True)
        times: dict[str, dict[str, list[float]]] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
            )
            for points, run_dir in runs.items():
                servers = {name: Server(src, run_dir) for name, src in versions.items()}
                try:
                    views = [("cloud", "#cloud", CLOUD_READY)]
                    if points == "1438":
                        views.insert(0, ("overview", "#overview", OVERVIEW_READY))
                    for view, frag, ready in views:
                        key = f"{view} {points}"
                        times[key] = {name: [] for name in versions}
                        for _ in range(args.repeats):
                            for name, server in servers.items():  # alternate: same noise
                                times[key][name].append(
                                    _measure(browser, server.url + "/" + frag, ready)
                                )
                        print(key, {k: [round(v) for v in vs] for k, vs in times[key].items()},
                              flush=True)  # fmt: skip
                finally:
                    for server in servers.values():
                        server.close()
            browser.close()
    rows = []
    print(f"\n{'view':<16}{'reference ms':>14}{'current ms':>12}{'ratio':>8}")
    for key, by in times.items():
        ref = statistics.median(by["reference"])
        cur = statistics.median(by["current"])
        rows.append({"view": key, "reference_ms": ref, "current_ms": cur, "ratio": cur / ref,
                     "samples": by})  # fmt: skip
        print(f"{key:<16}{ref:>14.0f}{cur:>12.0f}{cur / ref:>8.2f}")
    if args.out is not None:
        info = {
            "reference": args.reference,
            "repeats": args.repeats,
            "machine": f"{os.cpu_count()} CPUs, headless Chromium with SwiftShader (software GL)",
            "measure": "ms from navigation start to the view drawn, median, cold browser cache",
            "rows": rows,
        }
        args.out.write_text(json.dumps(info, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
