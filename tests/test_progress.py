"""Progress output: a redrawn bar on a terminal only; logs get one plain line per finished step."""
from __future__ import annotations

import io

from expunge.runtime import run_tasks
from expunge.progress import is_terminal, progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _square(x: int) -> int:
    return x * x


def test_run_tasks_outside_a_terminal_prints_one_plain_line_per_task(capsys):
    assert run_tasks(_square, [{"x": i} for i in range(3)], desc="squares", unit="task", use_ray=False) == [0, 1, 4]
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err and "\033" not in err
    lines = err.strip().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"squares: {i}/3 tasks done" for i in (1, 2, 3)]
    assert all(line.endswith(" tasks/hour)") for line in lines)


def test_a_terminal_gets_a_redrawn_bar(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    tty = FakeTerminal()
    with progress(2, "steps", stream=tty) as bar:
        bar.advance("first")
        bar.advance("second")
    text = tty.getvalue()
    assert "\r" in text and "2/2" in text and "second" in text


def test_plain_lines_when_the_terminal_cannot_redraw(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    assert not is_terminal(FakeTerminal())
    monkeypatch.setenv("TERM", "xterm")
    assert is_terminal(FakeTerminal()) and not is_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()  # isatty raises on a closed stream
    assert not is_terminal(closed) and not is_terminal(object())
    out = io.StringIO()
    with progress(1, "one", unit="model", stream=out) as bar:
        bar.advance()
    assert out.getvalue() == "one: 1/1 model done\n"
