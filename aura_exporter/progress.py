"""Progress of long runs on stderr, one tqdm bar each: history fetches, replays and training.

Every long loop reports through the same callback, `progress(done, total, **shown)`: `shown` are
figures worth watching (a training's losses), drawn after the bar.
"""

from __future__ import annotations

import sys
from typing import Protocol

from tqdm import tqdm


class Progress(Protocol):
    def __call__(self, done: int, total: int, **shown: str) -> None: ...


def progress_bar(what: str, unit: str = "it") -> Progress:
    """A bar for `what`, opened at the first report (when the total is known) and closed at the last; a
    report that starts over (the next analysis' fetch) opens a new one."""
    bar: tqdm | None = None

    def show(done: int, total: int, **shown: str) -> None:
        nonlocal bar
        if bar is None or bar.total != total or done < bar.n:
            bar = tqdm(total=total, desc=what, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        if shown:
            bar.set_postfix(shown, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return show
