"""Home: workspace, projects, the one-click demo, and the environment doctor."""
import sys

import streamlit as st

from core.machine import doctor, system
from core import jobs
from core.fsutil import human_bytes
from core.jobs import Step
from core.paths import REPO_ROOT, resolve_user_path
from core.project import METHOD_LABELS, ProjectError
from core.train import runs
from ui import job_status, session
from ui.errors import show_error
from ui.i18n import t
from ui.frame import page_frame

page_frame()

st.title("XTuner Studio")
st.markdown(t(
    "Fine-tune a large language model with [XTuner](https://github.com/InternLM/xtuner) in five steps: "
    "pick a model and data, configure, train, look at the results, convert and chat."))

ws = session.workspace()
project = session.current_project()
facts = doctor.quick_facts()
gpus = facts.gpus

# --- demo --------------------------------------------------------------------------------------
st.subheader(t("Try it in one click"))
st.write(t(
    "The demo project uses a tiny model and the tutorials' self-introduction dataset, built here "
    "with no download. It trains on a laptop CPU in about a minute and learns to answer "
    "“Who are you?” with a new identity."))
demo_dir = ws / "demo_build"
demo_job = jobs.read_job(demo_dir)
if st.button(t("Create the demo project"), type="primary", icon=":material/rocket_launch:", key="create_demo",
             disabled=demo_job is not None and demo_job.active):
    try:
        demo_job = jobs.start_job(demo_dir, [Step(name="demo", argv=jobs.python_module_argv("core.demo", "--workspace",
                                                                                             str(ws)),
                                                   cwd=str(REPO_ROOT))], kind="demo", title=t("Demo project"))
    except jobs.JobBusy:
        pass
    else:
        st.session_state["demo_build"] = demo_job.id  # this tab opens the demo when the build succeeds
        st.rerun()
if demo_job is not None and demo_job.state == "succeeded" and st.session_state.get("demo_build") == demo_job.id:
    del st.session_state["demo_build"]
    session.open_project("demo")
    st.session_state["flash"] = t("Demo project ready. Next: **3 · Train** → **Start a new run** (the settings are filled in).")
    st.rerun()
if demo_job is not None and demo_job.state != "succeeded":
    job_status.panel(demo_dir, t("Demo project"), key="demo",
                     running=t("Building the tiny model and the dataset…"), stoppable=False)

if st.session_state.get("flash"):
    st.success(st.session_state.pop("flash"))

# --- projects ----------------------------------------------------------------------------------
st.subheader(t("Projects"))
names = session.store().list()
for other in names:  # a run in progress anywhere in the workspace (coming back after the tunnel dropped)
    try:
        other_project = session.store().load(other)
    except ProjectError:
        continue
    active_run = runs.active_training(other_project)
    if active_run is None:
        continue
    status = runs.status(active_run)
    c1, c2 = st.columns([4, 1])
    c1.info(t("Run {run} of project **{project}** is training: iteration {it} of {total}.", run=active_run.id,
              project=other, it=status.iteration or 0, total=status.max_iters or "?"),
            icon=":material/model_training:")
    if c2.button(t("Open it"), key=f"goto_run_{other}", icon=":material/arrow_forward:"):
        session.open_project(other)
        st.session_state["train_run_select"] = active_run.id
        st.switch_page("pages/train.py")
left, right = st.columns(2)
with left:
    st.markdown("**" + t("Open") + "**")
    if names:
        for name in names:
            is_open = project is not None and project.name == name
            label = name + ("  ·  " + t("open") if is_open else "")
            if st.button(label, key=f"open_{name}", icon=":material/folder_open:"):
                session.open_project(name)
                st.rerun()
    else:
        st.caption(t("No projects in this workspace yet."))
with right:
    st.markdown("**" + t("New project") + "**")
    with st.form("new_project", clear_on_submit=False):
        name = st.text_input(t("Name"), placeholder="my-assistant",
                             help=t("Letters, digits, '-', '_', '.', spaces. It names the project's folder."))
        method_labels = {m: t(label) for m, label in METHOD_LABELS.items()}  # resolved now, not at format time
        method = st.selectbox(t("Method"), list(METHOD_LABELS), format_func=method_labels.get,
                              index=0 if gpus else 1,
                              help=t("QLoRA: least GPU memory. LoRA: a small adapter. Full: every weight (most memory)."))
        cache = st.text_input(t("Download cache"), value=str(ws / "downloads"),
                              help=t("Where models and datasets downloaded from hubs are kept, shared by projects."))
        if st.form_submit_button(t("Create"), type="primary"):
            try:
                cache_path = resolve_user_path(cache)
                created = session.store().create(name.strip(), download_cache=str(cache_path), method=method)
            except (ProjectError, ValueError, OSError) as e:
                show_error(e)
            else:
                session.open_project(created.name)
                st.session_state["flash"] = t("Project **{name}** created. Next: **1 · Model & Data**.", name=created.name)
                st.rerun()

# --- environment doctor ------------------------------------------------------------------------
st.subheader(t("This machine"))
total_mem, avail_mem = facts.memory_total, facts.memory_available
cols = st.columns(4)
cols[0].metric(t("GPUs"), len(gpus) if gpus else t("none"), help=t("NVIDIA GPUs seen through NVML."))
cols[1].metric(t("CPU cores"), facts.cpu_count)
cols[2].metric(t("Free memory"), human_bytes(avail_mem))
cols[3].metric(t("Free disk (workspace)"), human_bytes(system.disk_free(ws)))
for g in gpus:
    st.caption(t("GPU {index}: {name}, {memory} memory, driver {driver}, CUDA {cuda}", index=g["index"], name=g["name"],
                 memory=human_bytes(g["memory_total"]), driver=g["driver"], cuda=facts.cuda_driver or "?"))

doctor_dir = ws / "doctor"
probe_path = doctor_dir / "probe.json"
probe = doctor.cached_probe(probe_path)
for cap, ok, why, detail in doctor.capabilities(facts, probe):
    icon = ":green[:material/check_circle:]" if ok else ":orange[:material/block:]"
    st.markdown(f"{icon} **{t(cap)}** — {t(why)}" + (f" · `{detail}`" if detail else ""))
archs = doctor.architectures()
st.markdown(t("**Architectures** transformers {version} can build here: {names}",
              version=facts.packages.get("transformers") or "?", names=", ".join(a for a, ok, _ in archs if ok)))
st.caption(t("Needs more: {names}", names="; ".join(
    f"{a} ({t(why) if why == doctor.REMOTE_CODE else why})" for a, ok, why in archs if not ok)))

probe_job = jobs.read_job(doctor_dir)
with st.expander(t("Versions and checks"), expanded=probe is None):
    rows = []
    checks = {c["name"]: c for c in (probe or {}).get("checks", [])}
    for pkg, version in facts.packages.items():
        c = checks.get(pkg)
        status = "—" if c is None else (t("works") if c["ok"] else t("fails"))
        rows.append({t("package"): pkg, t("version"): version or t("not installed"), t("check"): status,
                     t("detail"): (c or {}).get("detail", "")})
    st.dataframe(rows, hide_index=True, placeholder="—")
    running = probe_job is not None and probe_job.active
    if st.button(t("Check every part now") if probe is None else t("Check again"), key="run_probe",
                 disabled=running, help=t("Imports torch, transformers, XTuner, bitsandbytes and DeepSpeed in a "
                                          "separate process and runs a tiny operation with each (~10 s).")):
        jobs.start_job(doctor_dir, [Step(name="probe", argv=[sys.executable, "-m", "core.machine.doctor", "probe",
                                                             str(probe_path)], cwd=str(REPO_ROOT))],
                       kind="doctor", title=t("Environment check"))
        st.rerun()

if probe_job is not None and probe_job.state != "succeeded":  # a finished check shows in the table above
    job_status.panel(doctor_dir, t("Environment check"), key="probe", running=t("Checking the environment…"))

smoke_dir = ws / "smoke"
smoke_job = jobs.read_job(smoke_dir)
if st.button(t("Run the smoke test"), key="run_smoke", disabled=smoke_job is not None and smoke_job.active,
             help=t("Runs the whole pipeline headless on the tiny demo model: does this machine work?")):
    jobs.start_job(smoke_dir, [Step(name="smoke", argv=[sys.executable, "-m", "core.smoke"], cwd=str(REPO_ROOT))],
                   kind="smoke", title=t("Smoke run"))
    st.rerun()
job_status.panel(smoke_dir, t("Smoke run"), key="smoke", log_title=t("Smoke run log"),
                 running=t("Smoke run in progress: build demo → train → convert → merge → chat (about a minute)…"),
                 done=t("Smoke run passed: this machine runs the whole pipeline."))

# --- workspace and remote access ---------------------------------------------------------------
with st.expander(t("Workspace and remote access")):
    new_ws = st.text_input(t("Workspace folder"), value=str(ws),
                           help=t("Projects, runs and checkpoints live here. XTUNER_STUDIO_HOME sets the default."))
    if st.button(t("Use this workspace")):
        try:
            path = resolve_user_path(new_ws)
            path.mkdir(parents=True, exist_ok=True)
        except (ValueError, OSError) as e:
            show_error(e, lead=t("Cannot use {path} as the workspace:", path=repr(new_ws)))
        else:
            session.set_workspace(path)
            st.rerun()
    port = st.get_option("server.port")
    st.markdown(t("The app listens on this machine's loopback address only. From your laptop, open a tunnel "
                  "and browse to http://localhost:{port}:", port=port))
    st.code(f"ssh -N -L {port}:127.0.0.1:{port} <user>@<gpu-box>", language="bash")
