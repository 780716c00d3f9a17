"""An analysis registered in this test module (no other file touched) appears in ``thresher
diagnose``, its stored results and figure, and the report's sections."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thresher.diagnose import ANALYSES
from thresher.diagnose.analyses import register_analysis

Cli = Callable[[list[str]], tuple[int, str, str]]
NAME = "embedding_norms"


@dataclass(frozen=True)
class NormResult:
    """Mean embedding norm per class (a test analysis with an obvious answer)."""

    classes: tuple[str, ...]
    mean_norm: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "mean_norm": list(self.mean_norm)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormResult:
        return cls(tuple(d["classes"]), tuple(float(v) for v in d["mean_norm"]))

    def summary(self) -> dict[str, Any]:
        return {"largest": self.classes[int(np.argmax(self.mean_norm))]}

    def table(self) -> list[list[str]]:
        return [["class", "mean norm"]] + [
            [c, f"{v:.3f}"] for c, v in zip(self.classes, self.mean_norm, strict=True)
        ]


def norms_figure(items: list[tuple[str, NormResult]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    for label, res in items:
        ax.bar(res.classes, res.mean_norm, label=label)
    return fig


def _norms(ctx: Any) -> NormResult:
    values = np.asarray(ctx.train.values)
    labels = np.asarray(ctx.train.labels)
    norms = np.linalg.norm(values, axis=1)
    return NormResult(
        tuple(ctx.classes),
        tuple(float(norms[labels == c].mean()) for c in range(len(ctx.classes))),
    )


@pytest.fixture(scope="module")
def plugin() -> Iterator[str]:
    register_analysis(
        NAME, "Embedding norms per class", NormResult, figure=f"{__name__}:norms_figure"
    )(_norms)
    try:
        yield NAME
    finally:
        ANALYSES.unregister(NAME)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("analysis") / "r"
    train_run(out, data=DataSpec(name="digits", limit=200), model="mnist_lenet", epochs=1)
    return out


def test_diagnose_and_report_include_the_new_analysis(cli: Cli, run_dir: Path, plugin: str) -> None:
    code, out, err = cli(["diagnose", str(run_dir), "--only", plugin, "--json"])
    assert code == 0, err
    info = json.loads(out)
    assert set(info["analyses"]) == {plugin}
    folder = run_dir / "diagnose" / plugin
    assert (folder / "result.json").is_file()
    assert (folder / "figure.png").read_bytes()[:4] == b"\x89PNG"
    from thresher.workflows.diagnose import load_result
    from thresher.workflows.run import open_run

    res = load_result(open_run(run_dir), plugin)
    assert isinstance(res, NormResult)
    assert len(res.mean_norm) == 10
    assert info["analyses"][plugin] == res.summary()

    code, out, err = cli(["report", str(run_dir), "--json"])
    assert code == 0, err
    page = Path(json.loads(out)["path"]).read_text()
    assert f"<section id='{plugin}'>" in page
    assert "Embedding norms per class" in page
    assert res.table()[1][1] in page  # its table, not only its heading
