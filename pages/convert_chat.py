"""Step 5 · Convert & Chat: checkpoint → merged Hugging Face model; base and fine-tuned side by side."""
import time

import streamlit as st

from core import convert, jobs, runs, system
from core.fsutil import dir_size, human_bytes
from ui import session
from ui.frame import page_frame

page_frame()

st.title("5 · Convert & Chat")
project = session.require_project()
device = system.device()

runs_with_ckpts = [r for r in runs.list_runs(project) if r.checkpoints()]
if not runs_with_ckpts:
    st.info("No checkpoint yet: train first on the Train page.")
    st.stop()

# --- convert -----------------------------------------------------------------------------------
st.subheader("Convert a checkpoint")
c1, c2 = st.columns(2)
run = c1.selectbox("Run", runs_with_ckpts, format_func=lambda r: r.id, key="conv_run")
iters = [i for i, _ in run.checkpoints()][::-1]
iteration = c2.selectbox("Checkpoint", iters, format_func=lambda i: f"iter_{i}.pth", key="conv_iter")
out_dir = convert.export_dir(run, iteration)
job = jobs.read_job(out_dir)
what = "pth → Hugging Face" + (" + merge with the base model" if project.method != "full" else "")
if st.button(f"Convert ({what})", type="primary", icon=":material/transform:", key="convert",
             disabled=job is not None and (job.active or job.state == "succeeded")):
    try:
        convert.start_export(project, run, iteration, device)
    except (FileNotFoundError, jobs.JobBusy) as e:
        st.error(str(e))
    st.rerun()


@st.fragment(run_every=1.5 if job is not None and job.active else None)
def convert_status() -> None:
    j = jobs.read_job(out_dir)
    if j is None:
        return
    step = j.steps[j.current_step].name if j.steps else ""
    if j.active:
        st.info(f"Converting… step {j.current_step + 1}/{len(j.steps)}: {step}")
        st.session_state["conv_active"] = str(out_dir)
    elif j.state == "succeeded":
        model_dir = convert.final_model_dir(run, iteration, project.method)
        st.success(f"Ready: `{model_dir}` ({human_bytes(dir_size(model_dir))})")
    else:
        st.error(f"Conversion {j.state}: {j.reason}")
        with st.expander("Log"):
            st.code((out_dir / jobs.LOG_FILE).read_text(errors="replace")[-8000:], language="log")
    if not j.active and st.session_state.pop("conv_active", None) == str(out_dir):
        st.rerun()


convert_status()

# --- chat --------------------------------------------------------------------------------------
st.subheader("Chat: base vs fine-tuned")
ready = [(r, i) for r in runs.list_runs(project) for i, d, j in convert.exports(r) if j is not None and j.state == "succeeded"]
if not ready:
    st.caption("Convert a checkpoint to chat with the fine-tuned model.")
    st.stop()
choice = st.selectbox("Fine-tuned model", ready, format_func=lambda ri: f"{ri[0].id} · iter {ri[1]}", key="chat_model")
tuned_dir = convert.final_model_dir(choice[0], choice[1], project.method)
max_new = st.slider("Max new tokens", 8, 512, 64, key="max_new")
question = st.chat_input("Ask both models the same question")

history = st.session_state.setdefault("chat_history", [])
for q, a_base, a_tuned in history:
    st.markdown(f"**You:** {q}")
    left, right = st.columns(2)
    left.markdown(f"*Base:* {a_base}")
    right.markdown(f"*Fine-tuned:* {a_tuned}")

if question:
    from core import chat  # torch loads here, on the first question, never on page load

    cache = st.session_state.setdefault("model_cache", chat.ModelCache(max_models=2))
    st.markdown(f"**You:** {question}")
    left, right = st.columns(2)
    left.markdown("**Base model**")
    right.markdown("**Fine-tuned model**")
    ph_base = left.container(key="answer_base").empty()
    ph_tuned = right.container(key="answer_tuned").empty()
    with st.spinner("Loading models…"):
        base = cache.get(project.model_path, device=device)
        tuned = cache.get(str(tuned_dir), device=device)
    settings = chat.GenerationSettings(max_new_tokens=max_new)
    streams = [chat.start_stream(m, project.prompt_template, question, settings, system=project.system_prompt)
               for m in (base, tuned)]
    while not all(s.done for s in streams):
        ph_base.markdown(streams[0].text + " ▌")
        ph_tuned.markdown(streams[1].text + " ▌")
        time.sleep(0.05)
    for ph, s in zip((ph_base, ph_tuned), streams):
        ph.markdown(s.text if not s.error else f":red[{s.error}]")
    history.append((question, streams[0].text, streams[1].text))
