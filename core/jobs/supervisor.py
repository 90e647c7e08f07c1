"""The detached supervisor of one job: ``python -m core.jobs.supervisor <job_dir> [<job_id>]``.

Runs the job's steps one after another, each in its own process group with output appended to
``job.log``, records every transition in ``job.json``, and turns a stop request into a clean stop:
a training step gets ``graceful_stop_s`` to save and exit by itself, then SIGTERM to its whole
process group (torchrun workers included), then SIGKILL — and the escalation is recorded. A step
that is not ready to stop gracefully (``graceful_after_file`` not written yet: the model is still
loading, nothing to save) is terminated at once.

SIGTERM, SIGINT or SIGHUP to the supervisor itself (a shutdown) is handled like the Stop button:
it writes the stop request, so training saves a checkpoint before it ends.

It moves only its own *queued* job to running (a job a reader already ended stays ended) and only
an active job to its final state; it keeps its own copy of the job, so a damaged ``job.json`` is
rewritten from it. A step that did not succeed has its ``cleanup_argv`` run (partial output
removed); the job's ``after_argv`` runs once its end is recorded. Steps see ``XTUNER_STUDIO_SUPERVISOR`` (``pid:create_time``) to watch it: training stops
and saves when its supervisor is gone. Every error of its own goes to ``supervisor.log``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

from core import jobs
from core.jobs import SUPERVISOR_ENV, Job, describe_exit, job_env, proc_info

POLL_S = 0.2
TERM_GRACE_S = 10.0

_terminate = False
_own: Optional[Job] = None  # this supervisor's copy of its job: rewrites a damaged job.json


def update_job(job_dir: Path, change: Callable[[Job], None]) -> Job:
    global _own
    _own = jobs.update_job(job_dir, change, fallback=_own)
    return _own


def _on_signal(signum, _frame) -> None:
    global _terminate
    _terminate = True


def _run_step(job_dir: Path, job: Job, index: int) -> tuple[int, bool]:
    """Run step ``index``; returns (exit code, stopped by request)."""
    step = job.steps[index]
    me = proc_info(os.getpid())
    env = job_env(step.env)
    if me is not None:
        env[SUPERVISOR_ENV] = f"{me.pid}:{me.create_time!r}"
    log_path = job_dir / jobs.LOG_FILE
    with open(log_path, "ab") as log:
        header = f"\n===== [{time.strftime('%Y-%m-%d %H:%M:%S')}] step {index + 1}/{len(job.steps)}: {step.name} =====\n"
        log.write(header.encode())
        log.flush()
        child = subprocess.Popen(
            step.argv,
            cwd=step.cwd or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    info = proc_info(child.pid)

    def mark_started(j: Job) -> None:
        if j.active:
            j.current_step = index
            j.child = info

    update_job(job_dir, mark_started)

    stop_seen_at = None
    term_sent_at = None
    while True:
        try:
            code = child.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if _terminate and not jobs.stop_requested(job_dir):
            # the supervisor itself is asked to end (shutdown): the step saves and stops as on Stop
            (job_dir / jobs.STOP_FILE).write_text(str(time.time()), encoding="utf-8")
        if stop_seen_at is None and (_terminate or jobs.stop_requested(job_dir)):
            stop_seen_at = now
            if not step.stops_gracefully():
                jobs.signal_group(info, signal.SIGTERM)
                term_sent_at = now
        if stop_seen_at is not None and term_sent_at is None and now - stop_seen_at > (step.graceful_stop_s or 0):
            jobs.signal_group(info, signal.SIGTERM)
            term_sent_at = now
            _note(job_dir, f"did not stop within {step.graceful_stop_s:.0f}s of the request: sent SIGTERM to its process group")
        if term_sent_at is not None and now - term_sent_at > TERM_GRACE_S:
            jobs.signal_group(info, signal.SIGKILL)
            _note(job_dir, f"did not exit {TERM_GRACE_S:.0f}s after SIGTERM: sent SIGKILL to its process group")
            code = child.wait()
            break
    # Leftovers of the step (dataloader workers, torchrun children) go with it.
    if _group_alive(child.pid):
        jobs.signal_group(info, signal.SIGKILL)
    # a step that honoured the request before this loop noticed it still counts as stopped
    return code, stop_seen_at is not None or jobs.stop_requested(job_dir)


def _cleanup(job_dir: Path, step: jobs.Step) -> None:
    """Remove the partial output of a step that did not succeed (its ``cleanup_argv``)."""
    if not step.cleanup_argv:
        return
    with open(job_dir / jobs.LOG_FILE, "ab") as log:
        subprocess.run(step.cleanup_argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                       env=job_env(step.env), cwd=step.cwd or None, timeout=600)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _note(job_dir: Path, text: str) -> None:
    def change(j: Job) -> None:
        j.escalation = text

    update_job(job_dir, change)
    with open(job_dir / jobs.LOG_FILE, "ab") as log:
        log.write(f"\n[XTuner Studio] {text}\n".encode())


def supervise(job_dir: Path, job_id: Optional[str] = None) -> None:
    global _own
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    def mark_running(j: Job) -> None:
        if j.state == "queued" and job_id in (None, j.id):  # never resurrect a job a reader ended
            j.state = "running"
            j.started_at = max(time.time(), j.created_at)
            j.supervisor = proc_info(os.getpid())

    job = jobs.update_job(job_dir, mark_running)
    if job.state != "running" or job.supervisor is None or job.supervisor.pid != os.getpid():
        print(f"job {job.id} is {job.state}, not this supervisor's to run; exiting", file=sys.stderr)
        return
    _own = job.model_copy(deep=True)
    final_state, code, reason = "succeeded", 0, None
    unfinished = None  # the step that did not succeed: its partial output is removed at the end
    try:
        for index in range(job.current_step, len(job.steps)):
            code, stopped = _run_step(job_dir, job, index)
            if code != 0 or stopped:
                unfinished = job.steps[index]
            if stopped:
                final_state, reason = "stopped", f"Stopped on request during '{job.steps[index].name}' ({describe_exit(code)})."
                break
            if code != 0:
                final_state = "failed"
                reason = (jobs._disk_full_reason(job_dir, job) or
                          f"'{job.steps[index].name}' failed: {describe_exit(code)}. See the log.")
                break
    except Exception as exc:  # the supervisor itself broke: record it, never leave "running"
        traceback.print_exc()
        final_state, code = "failed", None
        reason = (jobs.disk_full_message(job_dir, job.meta.get("needs_bytes")) if jobs.is_disk_full(exc)
                  else f"Supervisor error: {exc!r}")

    def mark_done(j: Job) -> None:
        if j.active:
            j.state = final_state
            j.exit_code = code
            j.reason = reason
            j.ended_at = max(time.time(), j.started_at or 0.0)

    deadline = time.monotonic() + 600
    while True:  # the final state must land: retry (space may be freed) rather than die silently
        try:
            update_job(job_dir, mark_done)
            break
        except Exception as exc:
            print(f"[{time.strftime('%H:%M:%S')}] could not record the final state {final_state!r}: {exc!r}",
                  file=sys.stderr, flush=True)
            if jobs.is_disk_full(exc) and (job_dir / jobs.RESERVE_FILE).exists():
                (job_dir / jobs.RESERVE_FILE).unlink()  # the space held for this moment
                continue
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)
    if unfinished is not None:  # after the state, so the end is recorded without waiting for it
        _cleanup(job_dir, unfinished)
    if job.after_argv:
        _after(job.after_argv)


def _after(argv: list[str]) -> None:
    """The job's ``after_argv`` (output to supervisor.log); its failure is logged, never raised."""
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, env=job_env(), cwd=str(jobs.REPO_ROOT), timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"[{time.strftime('%H:%M:%S')}] {argv!r} failed: {exc!r}", file=sys.stderr, flush=True)


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print("usage: python -m core.jobs.supervisor JOB_DIR [JOB_ID]", file=sys.stderr)
        return 2
    supervise(Path(sys.argv[1]).resolve(), sys.argv[2] if len(sys.argv) == 3 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
