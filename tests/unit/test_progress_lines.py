"""The driver's progress lines (``--no_ui``): the same words on a terminal and in a log
file; a log file gets them without styles."""

import io

from rich.console import Console
from rich.text import Text

from orchestrator.core import RowStatus, StatusChanged
from orchestrator.observers.console import ProgressPrinter

S = RowStatus


def change(old, new, **row) -> StatusChanged:
    return StatusChanged(job_id="a[1]", old=old, new=new, attempt=2, spec=None,
                         row={"Name": "bert [large]", **row}, time=1_700_000_000.0)


def lines(console: Console, *changes: StatusChanged) -> list[str]:
    printer = ProgressPrinter(console)
    for c in changes:
        printer(c)
    return console.file.getvalue().splitlines()


CHANGES = (change(S.PENDING, S.QUEUED), change(S.QUEUED, S.TRAINING, Node="vm/ab12"),
           change(S.TRAINING, S.DONE, WeightFile="runs/a[1]/best.pt"),
           change(None, S.DONE))


def test_a_log_file_gets_plain_lines_with_every_word():
    out = lines(Console(file=io.StringIO(), highlight=False, soft_wrap=True), *CHANGES)
    assert [line[9:] for line in out] == [
        "a[1] (bert [large]) Pending → Queued attempt 2",
        "a[1] (bert [large]) Queued → Training on vm/ab12",
        "a[1] (bert [large]) Training → Done weights runs/a[1]/best.pt",
    ]
    assert "\x1b" not in "".join(out)


def test_a_terminal_gets_the_same_words_styled():
    plain = lines(Console(file=io.StringIO(), highlight=False, soft_wrap=True), *CHANGES)
    styled = lines(Console(file=io.StringIO(), highlight=False, soft_wrap=True,
                           force_terminal=True, color_system="standard"), *CHANGES)
    assert "\x1b[" in "".join(styled)
    assert [Text.from_ansi(line).plain for line in styled] == plain
