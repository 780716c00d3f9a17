"""Progress bars: off with THRESHER_PROGRESS=0, forced into a non-terminal stream with 1."""

from __future__ import annotations

import pytest

from thresher.progress import track


@pytest.mark.parametrize(("setting", "shown"), [("0", False), ("1", True), ("auto", False)])
def test_progress_setting_decides_whether_a_log_file_gets_the_bar(
    setting: str, shown: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THRESHER_PROGRESS", setting)
    assert list(track(range(3), total=3, desc="counting")) == [0, 1, 2]
    err = capsys.readouterr().err  # captured: not a terminal
    assert ("counting" in err) is shown
