"""Home: workspace, projects, the one-click demo, and what this machine can do."""
import subprocess
import sys

import streamlit as st

from core import system
from core.fsutil import human_bytes
from core.paths import REPO_ROOT, resolve_user_path
from core.project import METHOD_LABELS, ProjectError
from ui import session

st.title("XTuner Studio")
st.markdown(
    "Fine-tune a large language model with [XTuner](https://github.com/InternLM/xtuner) in five clicks: "
    "pick a model and data, configure, train, look at the results, convert and chat."
)

ws = session.workspace()
project = session.current_project()

# --- what this machine can do -------------------------------------------------------------
gpus = system.gpus()
total_mem, avail_mem = system.memory()
cols = st.columns(4)
cols[0].metric("GPUs", len(gpus) if gpus else "none", help="NVIDIA GPUs seen through NVML.")
cols[1].metric("CPU cores", system.cpu_count())
cols[2].metric("Free memory", human_bytes(avail_mem))
cols[3].metric("Free disk (workspace)", human_bytes(system.disk_free(ws)))
if gpus:
    st.caption(" · ".join(f"GPU {g.index}: {g.name}, {human_bytes(g.memory_total)}" for g in gpus))
else:
    st.caption("No GPU found: LoRA and full fine-tuning run on the CPU (slowly, fine for the demo); "
               "QLoRA and DeepSpeed need an NVIDIA GPU.")

# --- demo --------------------------------------------------------------------------------------
st.subheader("Try it in one click")
st.write(
    "The demo project uses a tiny model and the tutorials' self-introduction dataset, built here "
    "with no download. It trains on a laptop CPU in under a minute and learns to answer "
    "*“Who are you?”* with a new identity."
)
if st.button("Create the demo project", type="primary", icon=":material/rocket_launch:", key="create_demo"):
    with st.spinner("Building the tiny model and the dataset…"):
        proc = subprocess.run(
            [sys.executable, "-m", "core.demo", "--workspace", str(ws)],
            cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=600,
        )
    if proc.returncode == 0:
        session.open_project("demo")
        st.session_state["flash"] = "Demo project ready. Next: **3 · Train** → Start (defaults are set)."
        st.rerun()
    else:
        st.error("Could not build the demo project:\n\n" + (proc.stdout + proc.stderr)[-3000:])

if st.session_state.get("flash"):
    st.success(st.session_state.pop("flash"))

# --- projects ----------------------------------------------------------------------------------
st.subheader("Projects")
names = session.store().list()
left, right = st.columns(2)
with left:
    st.markdown("**Open**")
    if names:
        for name in names:
            label = f"{name}" + ("  ·  open" if project and project.name == name else "")
            if st.button(label, key=f"open_{name}", icon=":material/folder_open:"):
                session.open_project(name)
                st.rerun()
    else:
        st.caption("No projects in this workspace yet.")
with right:
    st.markdown("**New project**")
    with st.form("new_project", clear_on_submit=False):
        name = st.text_input("Name", placeholder="my-assistant",
                             help="Letters, digits, '-', '_', '.', spaces. It names the project's folder.")
        method = st.selectbox("Method", list(METHOD_LABELS), format_func=METHOD_LABELS.get,
                              index=0 if gpus else 1,
                              help="QLoRA: least GPU memory. LoRA: a small adapter. Full: every weight (most memory).")
        cache = st.text_input("Download cache", value=str(ws / "downloads"),
                              help="Where models and datasets downloaded from hubs are kept, shared by projects.")
        if st.form_submit_button("Create", type="primary"):
            try:
                cache_path = resolve_user_path(cache)
                created = session.store().create(name.strip(), download_cache=str(cache_path), method=method)
            except (ProjectError, ValueError, OSError) as e:
                st.error(str(e))
            else:
                session.open_project(created.name)
                st.session_state["flash"] = f"Project **{created.name}** created. Next: **1 · Model & Data**."
                st.rerun()

# --- workspace and remote access ---------------------------------------------------------------
with st.expander("Workspace and remote access"):
    new_ws = st.text_input("Workspace folder", value=str(ws),
                           help="Projects, runs and checkpoints live here. XTUNER_STUDIO_HOME sets the default.")
    if st.button("Use this workspace"):
        try:
            path = resolve_user_path(new_ws)
            path.mkdir(parents=True, exist_ok=True)
        except (ValueError, OSError) as e:
            st.error(f"Cannot use {new_ws!r} as the workspace: {e}")
        else:
            session.set_workspace(path)
            st.rerun()
    port = st.get_option("server.port")
    st.markdown("The app listens on this machine's loopback only. From your laptop, open a tunnel and browse "
                f"to http://localhost:{port}:")
    st.code(f"ssh -N -L {port}:127.0.0.1:{port} <user>@<gpu-box>", language="bash")
