"""Step 3 · Train: launch settings, start (or warm start), stop, resume from any checkpoint; live
progress, charts, log tail and a machine monitor; the project's run history.

Everything shown is read from the run's files, so a closed tab or a restarted server loses nothing:
the page picks the running job up again from disk.
"""
import shlex
import time
from urllib.parse import urlencode

import streamlit as st

from core import jobs
from core.train import fallbacks, launch, runs
from core.machine import system
from core.train.configgen import ConfigError
from core.results import repro
from core.fsutil import human_bytes, human_duration
from ui import job_status, run_charts, run_queue, session, vision_train
from ui.frame import page_frame
from ui.errors import show_error, show_job_end
from ui.i18n import state_label, t

page_frame()

st.title(t("3 · Train"))
project = session.require_project()

STATE_ICONS = {"queued": ":material/hourglass_top:", "running": ":green[:material/play_circle:]",
               "succeeded": ":green[:material/check_circle:]", "failed": ":red[:material/error:]",
               "stopped": ":orange[:material/stop_circle:]", "new": ":material/draft:",
               "damaged": ":red[:material/report:]"}


def state_name(state: str) -> str:
    return state_label(state, title=True)


def why_text(why: launch.Why) -> str:
    return t(why.template, **why.params)


gpu_list = system.gpus()
device = "cuda" if gpu_list else "cpu"
all_runs = runs.list_runs(project)
active = runs.active_training(project)

# --- the machine ----------------------------------------------------------------------------------
@st.fragment(run_every=5.0)
def monitor() -> None:
    job = active.job() if active is not None else None
    pid = job.child.pid if job is not None and job.active and job.child else None
    snap = system.snapshot(project.dir, pid)
    cols = st.columns(4)
    cols[0].metric(t("CPU"), f"{snap.cpu_percent:.0f}%",
                   help=t("{cores} cores · load average {load}", cores=snap.cpu_count,
                          load=" / ".join(f"{x:.2f}" for x in snap.load_avg)))
    cols[1].metric(t("Memory used (of {total})", total=human_bytes(snap.memory_total)), human_bytes(snap.memory_used))
    cols[2].metric(t("Free disk for the project (of {total})", total=human_bytes(snap.disk_total)),
                   human_bytes(snap.disk_free))
    cols[3].metric(t("Training processes"), human_bytes(snap.process_memory) if snap.process_memory else "—",
                   help=t("Resident memory of the running training job and its workers."))
    if not snap.gpus:
        st.info(t("No GPU: NVML reports no NVIDIA GPU on this machine, so training runs on the CPU."),
                icon=":material/developer_board_off:")
    for g in snap.gpus:
        extra = []
        if g.utilization is not None:
            extra.append(t("{util}% busy", util=g.utilization))
        if g.temperature_c is not None:
            extra.append(f"{g.temperature_c} °C")
        if g.power_w is not None:
            extra.append(f"{g.power_w:.0f} W")
        st.progress(min(1.0, g.memory_used / g.memory_total) if g.memory_total else 0.0,
                    text=t("GPU {index} · {name}: {used} / {total} memory", index=g.index, name=g.name,
                           used=human_bytes(g.memory_used), total=human_bytes(g.memory_total))
                    + (" · " + " · ".join(extra) if extra else ""))


# --- how to launch: GPUs, DeepSpeed, nodes (the one editor of these settings) ----------------------
def plan_problem(p) -> launch.Why | None:
    """Why ``p``'s launch settings cannot run on this machine, or None."""
    try:
        launch.check_plan(launch.plan_for(p), device, len(gpu_list))
    except launch.LaunchError as e:
        return e.why
    return None


with st.expander(t("Launch: GPUs, DeepSpeed, nodes"), icon=":material/memory:",
                 expanded=plan_problem(project) is not None):
    if device != "cuda":
        st.info(t("No GPU here: training runs as one process on the CPU. Several GPUs, several nodes and "
                  "DeepSpeed need NVIDIA GPUs."))
    ds_reasons = {p: launch.deepspeed_unavailable(p, device) for p in launch.DEEPSPEED_PRESETS}
    ds_options = [None] + [p for p, why in ds_reasons.items() if why is None]
    one_node = device != "cuda"  # the form starts from what can run here
    with st.form("launch"):
        c1, c2 = st.columns(2)
        max_gpus = max(1, len(gpu_list))
        n_gpus = c1.number_input(t("GPUs per node"), min_value=1, max_value=max_gpus,
                                 value=min(max(1, project.num_gpus), max_gpus), disabled=device != "cuda",
                                 help=t("More than one starts torchrun with one process per GPU, as XTuner's "
                                        "NPROC_PER_NODE does."))
        ds = c2.selectbox(t("DeepSpeed"), ds_options,
                          index=ds_options.index(project.deepspeed) if project.deepspeed in ds_options else 0,
                          format_func=lambda p: t("None (plain PyTorch)") if p is None
                          else f"{p} · {t(launch.DEEPSPEED_LABELS[p])}",
                          disabled=len(ds_options) == 1,
                          help=t("XTuner's built-in DeepSpeed presets, passed as --deepspeed NAME."))
        c3, c4, c5, c6 = st.columns(4)
        nodes = c3.number_input(t("Nodes"), min_value=1, max_value=1024, value=1 if one_node else project.num_nodes,
                                disabled=device != "cuda", help=t("Machines training together (NNODES)."))
        rank = c4.number_input(t("This node's rank"), min_value=0, max_value=1023,
                               value=0 if one_node else project.node_rank,
                               disabled=device != "cuda", help=t("0 on the master node (NODE_RANK)."))
        addr = c5.text_input(t("Master address"), value=project.master_addr, disabled=device != "cuda",
                             help=t("Host name or IP of node 0 (ADDR)."))
        port = c6.number_input(t("Master port"), min_value=0, max_value=65535, value=project.master_port or 0,
                               disabled=device != "cuda", help=t("The same on every node (PORT); 0: pick a free one."))
        saved = st.form_submit_button(t("Save launch settings"))
    if saved:
        try:
            candidate = project.model_copy(update={
                "num_gpus": int(n_gpus), "deepspeed": ds, "num_nodes": int(nodes), "node_rank": int(rank),
                "master_addr": addr.strip(), "master_port": int(port) or None})
            launch.check_plan(launch.plan_for(candidate), device, len(gpu_list))  # nothing saved if it cannot run
            project = session.save_project(candidate)
        except ValueError as e:  # launch.LaunchError, or a value the project refuses
            show_error(e)
        else:
            st.success(t("Saved."))
    blocked = [(p, why) for p, why in ds_reasons.items() if why is not None]
    if blocked:
        st.caption(t("DeepSpeed presets not available here:") + "\n" +
                   "\n".join(f"- `{p}`: {why_text(why)}" for p, why in blocked))
    launch_problem = plan_problem(project)
    if launch_problem is not None:
        st.error(t("The saved launch settings cannot run on this machine: {why} Save the settings above (they "
                   "start from what can run here) to train.", why=why_text(launch_problem)))
    else:
        plan = launch.plan_for(project)
        st.caption(t("The app runs (in the run's folder):"))
        st.code(shlex.join(launch.train_argv(plan, "config.py", "work_dir", port=plan.master_port or 29500)),
                language="bash", wrap_lines=True)

# --- start a new run ----------------------------------------------------------------------------
sources = [(r, it, path) for r in all_runs if not (r.job() and r.job().active)
           for it, path in reversed(r.complete_checkpoints())]
c1, c2 = st.columns([3, 2])
with c1:
    mode = st.radio(t("Initial weights"), ["base", "warm"], horizontal=True, key="start_mode",
                    format_func=lambda m: t("The base model") if m == "base" else t("Warm start from a checkpoint"),
                    disabled=not sources,
                    help=t("Warm start: a new run whose weights come from another run's checkpoint, trained with "
                           "this project's current data and hyperparameters and a fresh optimizer."))
    warm = None
    if mode == "warm" and sources:
        choice = st.selectbox(t("Checkpoint"), range(len(sources)), key="warm_source",
                              format_func=lambda i: f"{sources[i][0].id} · iter_{sources[i][1]}")
        warm = sources[choice][2]
        st.caption(t("Change the data or the learning rate on Model & Data or Configure first; the run starts "
                     "from these weights with a fresh optimizer and schedule."))
with c2:
    if st.button(t("Start a new run"), type="primary", icon=":material/play_arrow:",
                 disabled=active is not None or launch_problem is not None, key="start",
                 help=t("Writes the config into a new run folder and starts training in the background.")):
        try:
            run, _ = runs.start_new_run(project, device, warm_start=warm, gpu_count=len(gpu_list))
        except jobs.JobBusy as e:
            show_error(e, lead=t("Another training run is using this machine:"), level="warning")
        except (launch.LaunchError, ConfigError, OSError) as e:  # OSError: disk full (fsutil.DiskFull) or I/O
            show_error(e)
        else:
            st.session_state["train_run_select"] = run.id
            st.rerun()
    run_queue.add_button(project, device, disabled=launch_problem is not None)
    if active is not None:
        st.caption(t("Run {run} is training; one run at a time uses the GPUs.", run=active.id))
run_queue.sweep_form(project, device, disabled=launch_problem is not None)
run_queue.panel(project)
vision_train.train_section(project, device, busy=active is not None or launch_problem is not None)

if not all_runs:
    st.info(t("No run yet. Training runs on **{device}**; the demo takes about a minute on a laptop CPU.",
              device=device.upper()))
    st.subheader(t("Machine"))
    monitor()
    st.stop()

# --- the selected run: stop / resume --------------------------------------------------------------
ids = [r.id for r in all_runs]
if st.session_state.get("train_run_select") not in ids:
    st.session_state["train_run_select"] = active.id if active else ids[0]
run_id = st.selectbox(t("Run"), ids, key="train_run_select")
run = next(r for r in all_runs if r.id == run_id)
job = run.job()

damage = run.damage()
if damage:
    st.error(t("This run's state file is damaged: {detail}", detail=damage), icon=":material/report:")
if job is not None and job.state == "damaged":
    c1, c2 = st.columns(2)
    if c1.button(t("Rebuild its job record"), icon=":material/build:", key="repair_job",
                 help=t("Rebuilds job.json from the training process, if it still runs, and the files on disk.")):
        runs.repair_job(project, run)
        st.rerun()
    if c2.button(t("Stop"), icon=":material/stop:", key="stop_damaged",
                 help=t("Saves a checkpoint at the next iteration, then stops. Works from any tab.")):
        jobs.request_stop(run.dir)
        st.toast(t("Stop requested: saving a checkpoint at the next iteration…"))
elif job is not None and job.active:
    if st.button(t("Stop"), icon=":material/stop:", key="stop",
                 help=t("Saves a checkpoint at the next iteration, then stops. Works from any tab.")):
        jobs.request_stop(run.dir)
        st.toast(t("Stop requested: saving a checkpoint at the next iteration…") if job.stops_gracefully()
                 else t("Stop requested: the model is still loading, there is nothing to save yet; stopping now."))
elif job is not None and job.state in ("stopped", "failed"):
    ckpts = run.complete_checkpoints()
    latest = run.latest_checkpoint()
    if ckpts:
        paths = [p for _, p in reversed(ckpts)]
        c1, c2 = st.columns([3, 2])
        chosen = c1.selectbox(
            t("Resume from"), paths, index=paths.index(latest) if latest in paths else 0, key="resume_from",
            format_func=lambda p: p.name + (f" · {t('latest')}" if p == latest else ""),
            help=t("Continues this run in its folder: weights, optimizer, schedule and data position come back, "
                   "and the curves go on from that iteration."))
        c2.write("")
        if c2.button(t("Resume"), icon=":material/resume:", key="resume", disabled=active is not None):
            try:
                runs.start_training(project, run, resume_from=chosen)
            except jobs.JobBusy as e:
                show_error(e, lead=t("Another training run is using this machine:"), level="warning")
            except (ConfigError, FileNotFoundError) as e:
                show_error(e)
            else:
                st.rerun()
    else:
        st.caption(t("No checkpoint was saved before it ended: start a new run."))


def history(current: runs.RunStatus) -> None:
    """The run history; the selected run's row from the same reading as the header above it."""
    st.subheader(t("Run history"))
    summaries = [runs.summarize(r, current if r.id == run.id else None) for r in all_runs]
    st.dataframe(
        {
            t("Run"): [s.id for s in summaries],
            t("State"): [state_name(s.state) for s in summaries],
            t("Created"): [s.created_at.replace("T", " ")[:19] for s in summaries],
            t("Duration"): [human_duration(s.duration_s) for s in summaries],
            t("Iterations"): [f"{s.last_iter or 0} / {s.max_iters}" if s.max_iters else "—" for s in summaries],
            t("Final loss"): ["—" if s.final_loss is None else f"{s.final_loss:.4f}" for s in summaries],
            t("Checkpoints"): [s.checkpoints for s in summaries],
            t("Starts"): [s.attempts for s in summaries],
            t("Warm start from"): [s.warm_start.split("/runs/")[-1] if s.warm_start else "" for s in summaries],
            t("Results"): ["results?" + urlencode({"project": project.name, "run": s.id}) for s in summaries],
        },
        hide_index=True, placeholder="—", key="history",
        column_config={
            t("Results"): st.column_config.LinkColumn(display_text=t("Open results")),
        },
    )
    st.download_button(t("Reproducibility bundle of {run} (zip)", run=run.id), data=lambda: repro.bundle(run.dir),
                       file_name=f"{run.id}-repro.zip", mime="application/zip", key="repro_zip",
                       icon=":material/download:", help=t("Config, exact command, package versions, dataset "
                                                          "hashes, seed and app version: what reproduces this run."))


def live_view() -> bool:
    """State, progress, charts, log and the run history of the selected run; True while it runs."""
    status = runs.status(run)  # one reading: the header, the bar and this run's history row agree
    job, progress = status.job, status.progress
    if job is None:
        st.warning(t("This run has no job record yet."))
        history(status)
        return False
    total_s = job.total_duration_s
    st.markdown(f"**{STATE_ICONS.get(status.state, '')} {state_name(status.state)}** · "
                + t("run {run} · attempt {attempt} · {duration} in all",
                    run=f"`{run.id}`", attempt=job.attempt, duration=human_duration(total_s)))
    if job.state in ("failed", "stopped"):
        show_job_end(job, t("Training"), level="error" if job.state == "failed" else "info")
    elif job.escalation:
        show_job_end(job, t("Training"), level="warning")
    if job.unsaved:
        st.warning(t("The job's state could not be saved; it is shown as read. See the details."))
        with st.expander(t("Details")):
            st.code(job.unsaved, language=None)
    for template, params in fallbacks.read(run.log_path):  # what this run could not do as configured
        st.info(t(template, **params), icon=":material/info:")
    if job.stop_requested_at and job.active:
        st.info(t("Stopping: a checkpoint is being saved at the next iteration…") if job.stops_gracefully()
                else t("Stopping: nothing to save yet (the model was still loading)…"))

    total, it, phase = progress.get("max_iters"), progress.get("iter") or 0, progress.get("phase")
    eta = progress.get("eta_s")
    if eta is not None and progress.get("updated_at"):
        eta = max(0.0, eta - (time.time() - progress["updated_at"]))
    if job.active and status.phase is None:
        st.progress(0.0, text=t("Preparing: loading the model and tokenizing the dataset…"))
    elif job.active and phase == "starting":
        st.progress(0.0, text=t("Starting: building the trainer…"))
    elif job.active and phase == "resuming":
        st.progress(min(1.0, it / total) if total else 0.0,
                    text=t("Resuming: moving the data to iteration {it}…", it=it))
    elif total:
        text = t("Iteration {it}/{total}", it=it, total=total)
        if job.active and phase == "training":
            text += " · " + t("ETA {eta}", eta=human_duration(eta))
        st.progress(min(1.0, it / total), text=text)
    if total:
        m = st.columns(4)
        epoch, max_epochs = progress.get("epoch"), progress.get("max_epochs")
        m[0].metric(t("Epoch"), f"{epoch} / {max_epochs}" if epoch else "—")
        m[1].metric(t("Elapsed"), human_duration(total_s))
        m[2].metric(t("ETA"), human_duration(eta) if job.active and phase == "training" else "—")
        tps = progress.get("tokens_per_s")
        m[3].metric(t("Tokens/s"), f"{tps:,.0f}" if tps else "—",
                    help=t("Training tokens per second (padding included), all GPUs together."))

    run_charts.show(run, "chart", x_max=total)
    with st.expander(t("Log (last 200 lines)"), expanded=job.state == "failed"):
        st.code(job_status.log_tail(run.dir, "train", lines=200)[-30000:] or t("(empty)"), language="log", height=360)
    history(status)
    return job.active


job_status.live(job is not None and job.active, live_view)  # a finished run: the page reruns for its buttons

if job is not None and job.state == "succeeded":
    st.success(t("Training finished."))
    st.page_link("pages/convert_chat.py", label=t("Next: Convert & Chat"), icon=":material/arrow_forward:")


st.subheader(t("Machine"))
monitor()

