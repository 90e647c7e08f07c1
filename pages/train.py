"""Step 3 · Train: start, stop, resume; live progress, loss and learning-rate charts, log."""
import streamlit as st

from core import charts, jobs, runs, system
from core.configgen import ConfigError
from core.metrics import LogTail, ScalarsReader, read_progress
from ui import session
from ui.frame import page_frame

page_frame()

st.title("3 · Train")
project = session.require_project()

STATE_ICONS = {"queued": ":material/hourglass_top:", "running": ":green[:material/play_circle:]",
               "succeeded": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
               "stopped": ":orange[:material/stop_circle:]"}


def fmt_duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


all_runs = runs.list_runs(project)
active = runs.active_training(project)

# --- controls ----------------------------------------------------------------------------------
device = system.device()
c1, c2, c3 = st.columns([2, 1, 2])
with c1:
    if st.button("Start a new run", type="primary", icon=":material/play_arrow:", disabled=active is not None,
                 key="start", help="Writes the config into a new run folder and starts training in the background."):
        try:
            run = runs.new_run(project, device)
            runs.start_training(project, run)
        except ConfigError as e:
            st.error(str(e))
        except jobs.JobBusy as e:
            st.warning(f"Another training run is using this machine: {e}")
        else:
            st.session_state["train_run"] = run.id
            st.rerun()
with c2:
    if active is not None and st.button("Stop", icon=":material/stop:", key="stop",
                                        help="Saves a checkpoint at the next iteration, then stops."):
        jobs.request_stop(active.dir)
        st.toast("Stop requested: saving a checkpoint at the next iteration…")

if not all_runs:
    st.info(f"No run yet. Training runs on **{device}**; the demo takes about a minute on a laptop CPU.")
    st.stop()

ids = [r.id for r in all_runs]
default = st.session_state.get("train_run") or (active.id if active else ids[0])
run_id = st.selectbox("Run", ids, index=ids.index(default) if default in ids else 0, key="train_run_select")
run = next(r for r in all_runs if r.id == run_id)

with c3:
    job = run.job()
    ckpt = run.latest_checkpoint()
    if job is not None and not job.active and job.state in ("stopped", "failed") and ckpt is not None and active is None:
        if st.button(f"Resume from {ckpt.name}", icon=":material/resume:", key="resume"):
            try:
                runs.start_training(project, run, resume_from=ckpt)
            except jobs.JobBusy as e:
                st.warning(str(e))
            st.rerun()


def _reader(kind, cls, path):
    key = f"{kind}:{path}"
    if key not in st.session_state:
        st.session_state[key] = cls(path)
    return st.session_state[key]


@st.fragment(run_every=2.0 if (active is not None and active.id == run.id) else None)
def live_view() -> None:
    job = run.job()
    if job is None:
        st.warning("This run has no job record yet.")
        return
    progress = read_progress(run.progress_path) or {}
    icon = STATE_ICONS.get(job.state, "")
    st.markdown(f"**{icon} {job.state.capitalize()}** · run `{run.id}` · attempt {job.attempt} · "
                f"duration {fmt_duration(job.duration_s)}")
    if job.reason and job.state != "succeeded":
        (st.error if job.state == "failed" else st.info)(job.reason)
    if job.escalation:
        st.warning(job.escalation)
    if job.stop_requested_at and job.active:
        st.info("Stopping: a checkpoint is being saved at the next iteration…")

    total = progress.get("max_iters")
    it = progress.get("iter", 0)
    if total:
        eta = progress.get("eta_s")
        extra = f" · {progress['tokens_per_s']:.0f} tokens/s" if progress.get("tokens_per_s") else ""
        st.progress(min(1.0, it / total), text=f"Iteration {it}/{total} · ETA {fmt_duration(eta)}{extra}")
    elif job.active:
        st.progress(0.0, text="Preparing: loading the model and tokenizing the dataset…")

    scalars = _reader("scalars", ScalarsReader, run.work_dir)
    scalars.poll()
    xs, loss = scalars.series("loss")
    if xs:
        left, right = st.columns(2)
        left.plotly_chart(charts.loss_figure(xs, loss), key="loss_chart")
        lx, lr = scalars.series("lr")
        right.plotly_chart(charts.line_figure(lx, lr, "Learning rate", "lr"), key="lr_chart")
    log = _reader("log", LogTail, run.log_path)
    with st.expander("Log", expanded=job.state == "failed"):
        st.code(log.text()[-20000:] or "(empty)", language="log")
    if not job.active and st.session_state.get("was_active") == run.id:
        st.session_state.pop("was_active", None)
        st.rerun()  # leave fragment mode: refresh the buttons for the finished run
    if job.active:
        st.session_state["was_active"] = run.id


live_view()

if job is not None and job.state == "succeeded":
    st.success("Training finished.")
    st.page_link("pages/convert_chat.py", label="Next: Convert & Chat", icon=":material/arrow_forward:")
