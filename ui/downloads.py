"""The download panel of one catalog entry: state, progress (bytes, rate, ETA), cancel, resume, delete."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

from core.models import hub
from core import jobs
from core.machine import system
from core.models.catalog import SOURCE_LABELS
from core.fsutil import human_bytes, human_duration
from ui import job_status
from ui.errors import show_error, show_job_end
from ui.i18n import t


def attempts_for(sources: dict[str, str], order: list[str]) -> list[hub.Attempt]:
    """The entry's repo ids in the user's source order (sources the entry lacks are skipped)."""
    return [hub.Attempt(s, sources[s]) for s in order if s in sources]


def progress_text(p: dict) -> tuple[float, str]:
    total, done = p.get("bytes_total"), p.get("bytes_done") or 0
    source = SOURCE_LABELS.get(p.get("source", ""), p.get("source", ""))
    if p.get("state") in (None, "starting", "listing"):
        return 0.0, t("Listing the files on {source}…", source=source or "…")
    if not total:
        return 0.0, t("{done} downloaded from {source}", done=human_bytes(done), source=source)
    frac = min(1.0, done / total)
    return frac, t("{done} of {total} · {rate}/s · {eta} left · {source}", done=human_bytes(done),
                   total=human_bytes(total), rate=human_bytes(p.get("rate_bps") or 0), eta=human_duration(p.get("eta_s"), unknown="…"),
                   source=source)


def _progress(cache: str, kind: str, name: str) -> bool:
    s = hub.status(cache, kind, name)
    frac, text = progress_text(s.progress)
    st.progress(frac, text=text)
    return s.active


def panel(cache: str, kind: str, name: str, sources: dict[str, str], order: list[str], size_bytes: int,
          endpoints: dict[str, str], title: str, in_use: str = "") -> Optional[Path]:
    """Draw the panel; returns the finished download's folder, else None. ``in_use``: a path the project
    uses (a download holding it cannot be deleted here)."""
    s = hub.status(cache, kind, name)
    key = f"{kind}-{name}"
    if s.complete and not s.active:
        st.success(t("Downloaded to {path}", path=str(s.dest)), icon=":material/download_done:")
        used = bool(in_use) and (Path(in_use) == s.dest or s.dest in Path(in_use).parents)
        if st.button(t("Delete this download"), key=f"delete-done-{key}", icon=":material/delete:", disabled=used,
                     help=t("The project uses it: choose another one first.") if used else None):
            hub.delete_download(cache, kind, name)
            st.rerun()
        return s.dest
    if s.active:
        job_status.live(True, lambda: _progress(cache, kind, name), period=1.0)
        if st.button(t("Cancel the download"), key=f"cancel-{key}", icon=":material/cancel:"):
            n = hub.cancel_download(cache, kind, name)
            st.session_state["md_flash"] = t("Download cancelled: {n} partial file(s) removed; finished files are "
                                              "kept, so Resume continues from there.", n=n)
            st.rerun()
        return None
    job = s.job
    if job is not None and job.state == "stopped":
        st.info(t("Cancelled. Resume downloads only what is missing."), icon=":material/pause_circle:")
    elif job is not None and job.state == "failed":
        attempts = s.progress.get("attempts") or []
        if not attempts:
            show_job_end(job, t("The download"))
        for a in attempts:
            show_error(a, lead=f"**{SOURCE_LABELS.get(a['source'], a['source'])}** —")
            if a.get("code") == "network":
                st.caption(t("Check the connection or proxy, or put another source (a mirror) first."))
    attempts = attempts_for(sources, order)
    free = system.disk_free(cache)
    st.caption(t("About {size} · {free} free in {folder} · sources in order: {sources}", size=human_bytes(size_bytes),
                 free=human_bytes(free), folder=cache,
                 sources=", ".join(SOURCE_LABELS[a.source] for a in attempts) or "—"))
    label = t("Resume the download") if job is not None else t("Download")
    cols = st.columns([1, 1, 3])
    if cols[0].button(label, key=f"start-{key}", type="primary", icon=":material/download:", disabled=not attempts):
        try:
            hub.start_download(cache, kind, name, attempts, title=title, size_hint=size_bytes, endpoints=endpoints)
        except hub.DownloadError as e:
            show_error(e)
        except jobs.JobBusy as e:
            show_error(e, lead=t("Already downloading:"), level="warning")
        else:
            st.rerun()
    if not attempts:
        st.warning(t("None of your chosen sources has this entry: add another source in the download settings."))
    if job is not None and s.dest.exists():
        if cols[1].button(t("Delete the files"), key=f"delete-{key}", icon=":material/delete:"):
            hub.delete_download(cache, kind, name)
            st.rerun()
    return None
