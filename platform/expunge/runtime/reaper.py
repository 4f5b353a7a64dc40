"""Stop an embedded Ray's processes when the command that started it dies, however it dies.

A local ``ray.init`` starts the GCS, the raylet and, under the raylet, the dashboard and runtime-env
agents. A driver that exits normally stops them (``ray.shutdown`` at exit). A SIGKILLed driver
cannot: the GCS and raylet notice and exit within seconds, but each agent then tries to flush its
logs to the dead GCS and lingers, orphaned, for about a minute (``ray._private.process_watcher``).

:func:`start_reaper` starts one small watcher process per embedded Ray. It holds the read end of a
pipe whose write end only the driver holds, so it learns of the driver's end, whatever the cause,
as end-of-file. Meanwhile it records the driver's descendants (pid and start time, from ``/proc``)
every :data:`POLL_S` seconds; at end-of-file it SIGKILLs those still alive with the same start time
(so a reused pid is never hit) and exits. Linux only (``/proc``); elsewhere it is not started.

Only Ray's processes are recorded (a command line starting ``ray::`` or inside the ``ray`` package),
so other children of a program that uses expunge as a library are never touched. One watcher serves
a process for its whole life, however many times it starts Ray. It runs as ``python -I reaper.py FD
DRIVER_PID``: the standard library only, no expunge, Ray or torch import.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

#: seconds between two records of the driver's process tree
POLL_S = 0.5
#: seconds given to a normal exit (``ray.shutdown``) to stop the processes itself
GRACE_S = 1.0


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start time)`` of a process from ``/proc/<pid>/stat``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), int(fields[19])


def is_ray(pid: int) -> bool:
    """A process of Ray's: its command line is ``ray::<role>`` (workers, agents) or runs a file of the
    ``ray`` package (GCS, raylet, dashboard, monitors)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return cmd.startswith(b"ray::") or b"/ray/" in cmd


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: ``pid -> start time``."""
    children: dict[int, list[int]] = {}
    start: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None:
            children.setdefault(st[0], []).append(int(name))
            start[int(name)] = st[1]
    out: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in out and pid in start:
            out[pid] = start[pid]
            todo.extend(children.get(pid, []))
    return out


def watch(fd: int, driver: int) -> None:
    """Record ``driver``'s tree until ``fd`` reports end-of-file, then kill what is left of it."""
    seen: dict[int, int] = {}
    me = os.getpid()
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready and not os.read(fd, 1):
            break
        seen.update({p: s for p, s in descendants(driver).items() if p != me and p not in seen and is_ray(p)})
    time.sleep(GRACE_S)
    for pid, started in seen.items():
        st = _stat(pid)
        if st is not None and st[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # exited meanwhile


def start_reaper() -> subprocess.Popen | None:
    """Start this process's watcher (once per process; Linux); returns it, or None elsewhere.

    The pipe's write end stays open in this process only (not inheritable, and closed in every child
    by ``subprocess``), so the watcher sees end-of-file exactly when this process is gone."""
    if os.getpid() in _STARTED or not os.path.exists(f"/proc/{os.getpid()}/stat"):
        return _STARTED.get(os.getpid(), (None, None))[0]
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(read_end), str(os.getpid())],
                            pass_fds=(read_end,), start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(read_end)
    # the write end is held, unused, for the life of the process: its exit closes it
    _STARTED[os.getpid()] = (proc, write_end)
    return proc


#: the watcher of each process and the pipe end it waits on (by pid: a forked child starts its own)
_STARTED: dict[int, tuple[subprocess.Popen, int]] = {}


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
