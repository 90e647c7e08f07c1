"""The one fragment that shows a job on a page (training, conversion, push, environment check, smoke
run, demo build, token count, download).

``live`` refreshes a drawing every ``period`` seconds while its job runs, and reruns the whole page
once when the job has ended (so buttons and results outside the fragment show the finished job).
``panel`` is ``live`` with the usual drawing of a ``core.jobs`` job: progress by step, state, a
Stop button, and the log's last lines.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import streamlit as st

from core import jobs
from core.results.metrics import LogTail
from ui.errors import show_job_end
from ui.i18n import t


def live(active: bool, body: Callable[[], bool], period: float = 2.0) -> None:
    """Draw ``body`` in a fragment run every ``period`` s while ``active`` (the page's reading of the job).
    ``body`` returns whether the job is still active; when it has ended, the whole page reruns once
    (its next reading is not active, so it does not rerun again)."""

    def fragment() -> None:
        if not body() and active:
            st.rerun()

    st.fragment(fragment, run_every=period if active else None)()


def log_tail(job_dir: str | Path, key: str, lines: int = 60) -> str:
    """The last ``lines`` lines of a job's log, read incrementally across refreshes."""
    path = Path(job_dir) / jobs.LOG_FILE
    name = f"job_log:{key}:{path}"
    tail = st.session_state.get(name)
    if tail is None:
        tail = st.session_state[name] = LogTail(path, max_lines=lines)
    return tail.text()


def panel(job_dir: str | Path, what: str, key: str, period: float = 2.0, running: Optional[str] = None,
          done: Optional[str] = None, stoppable: bool = True, log_title: Optional[str] = None,
          after: Optional[Callable[[jobs.Job], None]] = None) -> Optional[jobs.Job]:
    """A job's progress, state, Stop button and log; ``running`` and ``done`` replace the texts of a
    running and of a succeeded job; ``after(job)`` draws more inside the fragment. Returns the job as
    read before drawing (None: no job yet)."""
    job = jobs.read_job(job_dir)
    if job is None:
        return None

    def body() -> bool:
        j = jobs.read_job(job_dir)
        if j is None:
            return False
        n = max(1, len(j.steps))
        if j.active:
            step = j.steps[j.current_step].name if j.steps else ""
            st.progress(min(0.99, (j.current_step + 0.5) / n),
                        text=running or t("{what}: step {i}/{n} · {step} · {s} s", what=what, i=j.current_step + 1,
                                          n=n, step=step, s=int(j.duration_s or 0)))
            if stoppable and st.button(t("Stop"), key=f"stop_{key}", icon=":material/stop:"):
                jobs.request_stop(job_dir)
        elif j.state == "succeeded":
            st.success(done or t("{what}: done in {s} s.", what=what, s=int(j.duration_s or 0)))
        else:
            show_job_end(j, what)
        with st.expander(log_title or t("Log")):
            st.code(log_tail(job_dir, key) or " ", language="log")
        if after is not None:
            after(j)
        return j.active

    live(job.active, body, period)
    return job
