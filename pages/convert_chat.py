"""Step 5 · Convert & Chat: checkpoint → Hugging Face model (+ merge), the outputs, two models
answering side by side as they stream, and export to a model hub."""
from pathlib import Path

import streamlit as st

from core.deploy import chat, convert, endpoint_chat, export
from core import jobs
from core.train import runs
from core.machine import system
from core.fsutil import dir_size, human_bytes
from core.data.templates import can_think, template_names
from core.errors import UserError
from ui import chat_sources, evidence, gguf_panel, job_status, session, vision_chat
from ui.frame import page_frame
from ui.errors import describe, show_error
from ui.i18n import t

page_frame()

st.title(t("5 · Convert & Chat"))
project = session.require_project()
device = system.device()
KIND_LABELS = {"merged": "merged model", "adapter": "LoRA adapter", "full": "full fine-tuned model"}


@st.cache_resource
def model_cache() -> chat.ModelCache:
    """One cache per server process: loaded models are shared by the tabs and bounded."""
    return chat.ModelCache(max_models=2)


# --- convert -------------------------------------------------------------------------------------------
st.subheader(t("Convert a checkpoint"))
runs_with_ckpts = [r for r in runs.list_runs(project) if r.checkpoints() and r.info.get("kind") != "llava"]
if not runs_with_ckpts:
    st.info(t("No checkpoint yet: train first on the Train page."))
else:
    c1, c2, c3 = st.columns([3, 2, 2])
    run = c1.selectbox(t("Run"), runs_with_ckpts, format_func=lambda r: r.id, key="conv_run")
    iters = [i for i, _ in run.checkpoints()][::-1]
    suggested = evidence.suggestion(project, run)
    best_index = iters.index(suggested.iteration) if suggested and suggested.iteration in iters else 0
    iteration = c2.selectbox(t("Checkpoint"), iters, index=best_index, format_func=lambda i: f"iter_{i}.pth",
                             key="conv_iter")
    if suggested is not None:
        st.caption(evidence.suggestion_text(suggested))
    adapter_method = convert.run_method(run, project) != "full"
    merge = c3.checkbox(t("Merge into the base model"), value=True, disabled=not adapter_method, key="conv_merge",
                        help=t("LoRA/QLoRA: pth_to_hf gives an adapter; merging makes a standalone model. "
                               "You can chat with the adapter without merging too."))
    out_dir = convert.export_dir(run, iteration)
    job = jobs.read_job(out_dir)
    what = t("pth → Hugging Face") + (t(" + merge") if adapter_method and merge else "")
    if st.button(t("Convert ({what})", what=what), type="primary", icon=":material/transform:", key="convert",
                 disabled=job is not None and job.active):
        try:
            convert.start_export(project, run, iteration, device, merge=merge)
        except (FileNotFoundError, jobs.JobBusy) as e:
            show_error(e)
        else:
            st.rerun()

    def ready(j) -> None:
        if j.state == "succeeded":
            model_dir = convert.final_model_dir(run, iteration, convert.run_method(run, project))
            if not merge or not adapter_method or model_dir.is_dir():
                shown = model_dir if model_dir.is_dir() else out_dir / "hf"
                st.caption(t("Ready: {path} ({size})", path=str(shown), size=human_bytes(dir_size(shown))))

    job_status.panel(out_dir, t("Conversion"), key=f"convert_{out_dir}", period=1.5, after=ready)

# --- outputs ---------------------------------------------------------------------------------------------
outputs = convert.outputs(project)
if outputs:
    st.subheader(t("Outputs"))
    st.caption(t("Base model of the next run: {path}", path=f"`{project.model_path}`"))
    for out in outputs:
        o1, o2, o3 = st.columns([4, 2, 2])
        o1.markdown(f"**{out.run.id} · iter {out.iteration}** · {t(KIND_LABELS[out.kind])}  \n`{out.path}`")
        o2.markdown(human_bytes(out.size))
        if out.is_model:
            current = str(out.path) == project.model_path
            if o3.button(t("Use as base model"), key=f"base_{out.path}", disabled=current,
                         help=t("Fine-tune the fine-tuned model: the next run starts from it.")):
                session.save_project(convert.use_as_base(project, out))
                st.session_state["chat_flash"] = t("The next run fine-tunes {path}.", path=str(out.path))
                st.rerun()
if msg := st.session_state.pop("chat_flash", None):
    st.success(msg)

# --- chat ----------------------------------------------------------------------------------------------
vision_chat.section(project, device)  # LLaVA runs: converted and asked there
st.subheader(t("Chat side by side"))
choices = chat.model_choices(project)
if not choices:
    st.info(t("The project has no usable base model: choose one on Model & Data."))
    st.stop()
fine_tuned = [i for i, c in enumerate(choices) if c.kind != "base"]
l1, l2 = st.columns(2)
options_id = abs(hash(tuple(c.key for c in choices)))  # new models (a conversion) → the defaults apply again
with l1:  # each side: a project model, a served endpoint or a local folder (ui/chat_sources.py)
    left = chat_sources.pick(project, "left", choices, 0, options_id)
with l2:
    right = chat_sources.pick(project, "right", choices, fine_tuned[0] if fine_tuned else 0, options_id)
if not fine_tuned:
    st.caption(t("Convert a checkpoint to compare the base model with a fine-tuned one."))

with st.expander(t("Prompt and generation settings"), icon=":material/tune:"):
    names = template_names()
    default_template = project.prompt_template if project.prompt_template in names else names[0]
    s1, s2, s3 = st.columns(3)
    template = s1.selectbox(t("Prompt template"), names, index=names.index(default_template), key="chat_template",
                            help=t("The model's XTuner template; the one it was trained with."))
    max_new = s2.slider(t("Max new tokens"), 8, 2048, 128, key="chat_max_new")
    temperature = s3.slider(t("Temperature"), 0.0, 2.0, 0.0, 0.05, key="chat_temperature",
                            help=t("0: greedy (the same answer every time)."))
    top_p = s1.slider(t("Top-p"), 0.05, 1.0, 1.0, 0.05, key="chat_top_p", disabled=temperature == 0)
    top_k = s2.number_input(t("Top-k (0: off)"), 0, 1000, 0, key="chat_top_k", disabled=temperature == 0)
    rep = s3.slider(t("Repetition penalty"), 1.0, 2.0, 1.0, 0.01, key="chat_rep")
    seed_text = s1.text_input(t("Seed (empty: random)"), value="0", key="chat_seed", disabled=temperature == 0)
    system_prompt = st.text_area(t("System prompt"), value=project.system_prompt, key="chat_system")
    thinking = can_think(template) and st.toggle(
        t("Thinking"), value=False, key="chat_thinking",
        help=t("Let the model reason before it answers (Qwen3). Off: the non-thinking format it was fine-tuned in."))
try:
    seed = int(seed_text) if seed_text.strip() else None
except ValueError:
    st.error(t("The seed must be a whole number."))
    seed = 0
settings = chat.GenerationSettings(max_new_tokens=max_new, temperature=temperature, top_p=top_p, top_k=int(top_k),
                                   repetition_penalty=rep, seed=seed)

cache = model_cache()
turns = st.session_state.setdefault("chat_turns", [])
# answers still streaming live here, so a click elsewhere (which reruns the page) loses nothing
pending = st.session_state.get("chat_pending")
b1, b2, _ = st.columns([1, 1, 6])
if b1.button(t("Clear"), key="chat_clear", icon=":material/delete_sweep:", disabled=not turns and not pending):
    turns.clear()
    st.session_state.pop("chat_pending", None)
    st.rerun()
if b2.button(t("Undo"), key="chat_undo", icon=":material/undo:", disabled=not turns and not pending):
    if st.session_state.pop("chat_pending", None) is None:
        turns.pop()
    st.rerun()


def shown(text: str) -> str:
    """An answer as Markdown: the reasoning of a thinking answer as a quote above it."""
    reasoning, answer = chat.split_thinking(text)
    return "".join(f"> {line}\n" for line in reasoning.splitlines()) + "\n" + answer if reasoning else text


def render_turn(turn: dict, newest: bool, index: int):
    """The question and both answers; the newest turn's answers carry the keys answer_left/right."""
    st.markdown(f"**{t('You')}:** {turn['q']}")
    cols = st.columns(2)
    holders = []
    for side, col in zip(("left", "right"), cols):
        col.caption(turn["labels"][0 if side == "left" else 1])
        key = f"answer_{side}" if newest else f"answer_{side}_{index}"
        holders.append(col.container(key=key).empty())
    return holders, cols


question = st.chat_input(t("Ask both models the same question"), disabled=left is None or right is None)
if question and pending is not None:
    st.toast(t("Still answering the previous question…"))
elif question:
    turn = {"q": question, "labels": [chat_sources.label(left), chat_sources.label(right)],
            "keys": [left.key, right.key], "answers": ["", ""], "stats": ["", ""]}
    pending = st.session_state["chat_pending"] = {"turn": turn, "streams": None, "settings": settings,
                                                  "choices": [left, right],
                                                  "template": template, "system": system_prompt,
                                                  "thinking": thinking}
if pending is not None and pending["streams"] is None:
    turn = pending["turn"]
    try:
        chosen = pending["choices"]
        with st.spinner(t("Loading models… (the first question loads them)")):
            # an endpoint loads nothing here; a folder from elsewhere never runs its own code
            loaded = [None if c.kind == "endpoint" else
                      cache.get(c.model_path, c.adapter, device, project.trust_remote_code and c.kind != "folder")
                      for c in chosen]
    except (KeyError, OSError, ValueError) as e:
        st.session_state.pop("chat_pending", None)
        show_error(e, lead=t("Cannot load the model:"))
        st.stop()
    # each side continues its own conversation: the earlier turns that side's model answered
    histories = [[(tr["q"], tr["answers"][side]) for tr in turns if tr["keys"][side] == turn["keys"][side]]
                 for side in (0, 1)]
    pending["streams"] = [endpoint_chat.start_stream(c, turn["q"], pending["settings"], system=pending["system"],
                                                     history=histories[side]) if c.kind == "endpoint" else
                          chat.start_stream(m, pending["template"], turn["q"], pending["settings"],
                                            system=pending["system"], history=histories[side],
                                            thinking=pending.get("thinking", False), own_template=c.kind == "folder")
                          for side, (c, m) in enumerate(zip(chosen, loaded))]

for i, turn in enumerate(turns):
    holders, cols = render_turn(turn, newest=i == len(turns) - 1 and pending is None, index=i)
    for holder, text, stat, col in zip(holders, turn["answers"], turn["stats"], cols):
        holder.markdown(shown(text) or "…")
        if stat:
            col.caption(stat)

if pending is not None:
    turn, streams = pending["turn"], pending["streams"]
    holders, cols = render_turn(turn, newest=True, index=len(turns))
    while not all(s.done for s in streams):
        for holder, s in zip(holders, streams):
            holder.markdown((s.text or "") + " ▌")
        chat.wait_any(streams, 0.05)
    for side, (holder, s, col) in enumerate(zip(holders, streams, cols)):
        error = describe(s.error)[0] if isinstance(s.error, UserError) else s.error  # an endpoint's: translated
        holder.markdown(shown(s.text) if not s.error else f":red[{error}]")
        turn["answers"][side] = s.text
        if s.tokens_per_s:
            turn["stats"][side] = t("{n} tokens · {rate:.1f} tokens/s", n=s.tokens, rate=s.tokens_per_s)
            col.caption(turn["stats"][side])
    turns.append(turn)
    st.session_state.pop("chat_pending", None)

with st.expander(t("Loaded models ({n})", n=len(cache.loaded())), icon=":material/memory:"):
    limit = st.number_input(t("Keep at most this many models loaded"), 1, 8, cache.max_models, key="chat_limit")
    if limit != cache.max_models:
        cache.set_limit(int(limit))
    for item in cache.items():
        path, adapter, dev = item.key
        u1, u2 = st.columns([5, 1])
        u1.markdown(f"`{Path(path).name}`" + (f" + `{Path(adapter).parent.name}/{Path(adapter).name}`" if adapter else "")
                    + f" · {dev} · {human_bytes(item.bytes)}")
        if u2.button(t("Unload"), key=f"unload_{item.key}"):
            cache.unload(item.key)
            st.rerun()
    if cache.loaded() and st.button(t("Unload all"), key="unload_all"):
        cache.unload_all()
        st.rerun()

# --- GGUF export and serving (ui/gguf_panel.py) ----------------------------------------------------------
gguf_panel.render(project, outputs, lambda kind: t(KIND_LABELS[kind]))

# --- export to a hub --------------------------------------------------------------------------------------
st.subheader(t("Export to a model hub"))
if not outputs:
    st.caption(t("Convert a checkpoint first: the merged model or the adapter can then be pushed."))
    st.stop()
e1, e2 = st.columns(2)
target = e1.selectbox(t("What to push"), outputs, key="push_output",
                      format_func=lambda o: f"{o.run.id} · iter {o.iteration} · {t(KIND_LABELS[o.kind])}")
hub = e2.radio(t("Hub"), list(export.HUBS), horizontal=True, key="push_hub", format_func=lambda h: export.HUBS[h].label)
e3, e4 = st.columns(2)
repo_id = e3.text_input(t("Repository (owner/name)"), key="push_repo", placeholder="your-name/my-assistant")
private = e4.checkbox(t("Private repository"), value=True, key="push_private")
try:
    secrets = dict(st.secrets)
except Exception:  # no .streamlit/secrets.toml
    secrets = None
token, source, var = export.find_token(hub, secrets)
if token:
    where = t("environment variable {var}", var=var) if source == "environment" else t("Streamlit secret {var}", var=var)
    st.caption(t("Token: {where} (never shown, never written to a file or a command line).", where=where))
else:
    st.warning(t("No {hub} token: set {vars} in the environment of the app, or in .streamlit/secrets.toml.",
                 hub=export.HUBS[hub].label, vars=" / ".join(export.HUBS[hub].token_vars)))
push_dir = export.push_job_dir(target.path, hub)
push_job = jobs.read_job(push_dir)
if st.button(t("Push"), type="primary", icon=":material/cloud_upload:", key="push",
             disabled=not token or not repo_id.strip() or (push_job is not None and push_job.active)):
    try:
        export.start_push(target.path, hub, repo_id, token, private=private)
    except (export.ExportError, jobs.JobBusy) as e:
        show_error(e)
    else:
        st.rerun()


job_status.panel(push_dir, t("Push"), key=f"push_{push_dir}")
