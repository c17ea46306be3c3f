"""One progress bar for every long run: a bar per run, closed at its end, a new one when reports start over."""

from __future__ import annotations

from aura_exporter.progress import progress_bar


def test_a_bar_per_run_with_the_figures_shown(capsys):
    show = progress_bar("fetching history", unit="chunk")
    for done in range(1, 4):
        show(done, 3)
    for done in range(1, 4):  # the next analysis' fetch: a bar of its own, not a closed one updated
        show(done, 3, loss="0.1234")
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    assert any("fetching history" in line and "3/3" in line for line in lines)
    assert any("3/3" in line and "loss=0.1234" in line for line in lines)
