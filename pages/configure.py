"""Step 2 · Configure: presets, hyperparameters (each explained), evaluation, GPUs, a memory estimate,
the generated config, the CLI commands and a Slurm script."""
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from core.train import commands, precision, presets
from core.machine import system
from core.train.config_import import E_NOT_UTF8, ConfigImportError, parse_config
from core.train.configgen import ConfigError, render_config, spec_from_project
from core.models.estimate import EstimateError, estimate_for_project, fit_check
from core.fsutil import human_bytes
from core.project import Hyperparams, ProjectError
from core.train.hyperparams import MAX_EVALUATION_QUESTIONS as MAX_QUESTIONS
from ui import session, vision_train
from ui.frame import page_frame
from ui.errors import show_error
from ui.evidence import expected_answer_inputs
from ui.hyperparams_form import NotANumber, hyperparams_from, hyperparams_widgets
from ui.i18n import t

page_frame()

st.title(t("2 · Configure"))
project = session.require_project()
hp = project.hyperparams
METHOD = project.method.upper()


def save(updated, message: str) -> None:
    """Save the project and show ``message`` after the rerun."""
    try:
        session.save_project(updated)
    except ProjectError as e:
        show_error(e)
        return
    st.session_state["configure_flash"] = message
    st.session_state["configure_saves"] = st.session_state.get("configure_saves", 0) + 1
    st.rerun()


def count(n: int) -> str:
    """12.3 M, 7.62 B: parameter counts as people say them."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return str(n)


if flash := st.session_state.pop("configure_flash", None):
    st.success(flash)

st.caption(t("Method: **{method}** · change it on Model & Data.", method=METHOD))
if project.objective != "sft":
    st.caption(t("Objective: **{objective}** on the preference pairs `{path}` · change it on Model & Data.",
                 objective=project.objective.upper(), path=project.preference_path or "—"))

# --- presets ---------------------------------------------------------------------------------------
with st.expander(t("Presets: XTuner's own, any XTuner config, or yours"), icon=":material/bookmarks:"):
    p1, p2, p3 = st.columns(3)
    with p1:
        st.markdown(t("**XTuner's {method} preset**", method=METHOD))
        st.caption(f"`{presets.preset_source(project.method)}`")
        if st.button(t("Reset to this preset"), key="preset_reset", icon=":material/restart_alt:"):
            save(project.model_copy(update={"hyperparams": presets.preset(project.method)}),
                 t("Hyperparameters reset to XTuner's {method} preset.", method=METHOD))
    with p2:
        configs = presets.xtuner_configs(project.method)
        choice = st.selectbox(t("Another XTuner {method} config", method=METHOD), list(configs), index=None,
                              placeholder=t("Search {n} configs…", n=len(configs)), key="preset_xtuner")
        if st.button(t("Use its hyperparameters"), key="preset_xtuner_apply", disabled=choice is None):
            imported = parse_config(configs[choice].read_text(encoding="utf-8"))
            merged = Hyperparams.model_validate(project.hyperparams.model_dump() | imported.hyperparams)
            save(project.model_copy(update={"hyperparams": merged}),
                 t("Hyperparameters taken from {name}.", name=choice))
    with p3:
        mine = presets.list_user_presets(project.workspace)
        picked = st.selectbox(t("My presets"), mine, index=None, placeholder=t("None saved yet") if not mine else t("Choose a preset"),
                              key="preset_mine")
        if st.button(t("Load"), key="preset_load", disabled=picked is None):
            try:
                save(presets.load_user_preset(project.workspace, picked).apply(project),
                     t("Preset {name} loaded.", name=picked))
            except presets.PresetError as e:
                show_error(e)
        name = st.text_input(t("Save the current settings as"), key="preset_name", placeholder=t("e.g. my 7B QLoRA"))
        if st.button(t("Save preset"), key="preset_save", disabled=not name.strip()):
            try:
                presets.save_user_preset(project.workspace, name, project)
                st.success(t("Preset {name} saved.", name=name.strip()))
            except presets.PresetError as e:
                show_error(e)

# --- import an XTuner config --------------------------------------------------------------------
with st.expander(t("Import an existing XTuner config (.py)"), icon=":material/upload_file:",
                 expanded=st.session_state.get("import_file") is not None):
    st.caption(t("The file is read as Python syntax and never run: known settings are mapped to this form, "
                 "the rest is listed below."))
    upload = st.file_uploader(t("XTuner config"), type=["py"], key="import_file")
    if upload is not None:
        try:
            raw = upload.getvalue()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigImportError(E_NOT_UTF8) from None
            imported = parse_config(text)
        except ConfigImportError as e:
            show_error(e, lead=t("Cannot import {name}:", name=upload.name))
        else:
            rows = [{t("setting"): k, t("value"): repr(imported.hyperparams.get(k, getattr(imported, k, None))),
                     t("from"): origin} for k, origin in imported.mapped.items()]
            st.markdown(t("**Mapped to the form** ({n})", n=len(rows)))
            st.dataframe(pd.DataFrame(rows), hide_index=True, placeholder="—", width="stretch")
            for err in imported.errors:
                st.warning(err)
            if imported.unmapped:
                st.markdown(t("**Not mapped** ({n}): kept by XTuner Studio's own config layout",
                              n=len(imported.unmapped)))
                st.code("\n".join(f"{k} = {v}" if not k.startswith("line ") else f"# {k}\n{v}"
                                  for k, v in imported.unmapped.items()), language="python", height=320)
            paths = st.checkbox(t("Also take its model, dataset and prompt template"), key="import_paths",
                                help=t("Off: keep the ones chosen on Model & Data."))
            if st.button(t("Apply to this project"), key="import_apply", type="primary"):
                try:
                    save(imported.apply(project, paths=paths), t("Imported {name}.", name=upload.name))
                except ValidationError as e:
                    show_error(e)

# --- hyperparameters (widgets generated from core.train.hyperparams) -----------------------------
gpus = system.gpus()
with st.form("hyperparams"):
    raw = hyperparams_widgets(hp, project.method, project.objective)
    submitted = st.form_submit_button(t("Save"), type="primary")
if submitted:
    try:
        save(project.model_copy(update={"hyperparams": hyperparams_from(hp, raw)}), t("Saved."))
    except ValidationError as e:
        show_error(e)
    except NotANumber as e:
        show_error(e)

# --- launch settings: edited (and checked against this machine) on Train ------------------------
st.subheader(t("GPUs"))
st.markdown(t("**{gpus}** GPU(s) per node · **{nodes}** node(s) · DeepSpeed: **{deepspeed}**",
              gpus=max(1, project.num_gpus), nodes=project.num_nodes,
              deepspeed=project.deepspeed or t("off")))
st.page_link("pages/train.py", label=t("Change them on 3 · Train → Launch, where they are checked against this "
                                       "machine"), icon=":material/memory:")
prec = precision.resolve(hp.precision, "cuda" if gpus else "cpu", precision.gpu_capability(gpus[:max(1, project.num_gpus)]))
st.caption(t("Precision") + ": " + t(prec.note, **prec.params))
if prec.fallback:
    st.warning(t(prec.fallback, **prec.params))

# --- evaluation ----------------------------------------------------------------------------------
st.subheader(t("Evaluation"))
rev = st.session_state.get("configure_saves", 0)  # keyed widgets start again from the saved project after every save
n_questions = st.number_input(t("Number of evaluation questions"), min_value=1,
                              value=max(1, min(MAX_QUESTIONS, len(project.evaluation_inputs))),
                              key=f"n_questions_{rev}",
                              help=t("XTuner asks them at every checkpoint; the answers appear on Results. "
                                     "At most {n}.", n=MAX_QUESTIONS))
if n_questions > MAX_QUESTIONS:
    st.error(t("At most {n} evaluation questions: XTuner asks every one at each evaluation. Question {extra} "
               "and later cannot be added.", n=MAX_QUESTIONS, extra=MAX_QUESTIONS + 1))
with st.form("evaluation"):
    questions, expected = [], []
    for i in range(min(int(n_questions), MAX_QUESTIONS)):
        current = project.evaluation_inputs[i] if i < len(project.evaluation_inputs) else ""
        questions.append(st.text_area(t("Question {n}", n=i + 1), value=current, height=68, key=f"eval_q_{i}_{rev}"))
        expected.append(expected_answer_inputs(project, i, rev))
    system_prompt = st.text_area(t("System prompt (optional)"), value=project.system_prompt, key=f"eval_system_{rev}",
                                 help=t("Given to the model before each evaluation question, exactly as written."))
    eval_submitted = st.form_submit_button(t("Save evaluation"), type="primary")
if eval_submitted:
    qs = [q for q in questions if q.strip()]
    if not qs:
        st.error(t("Give between 1 and {n} evaluation questions.", n=MAX_QUESTIONS))
    else:
        kept = [e for q, e in zip(questions, expected) if q.strip()]
        save(project.model_copy(update={"evaluation_inputs": qs, "evaluation_expected": kept,
                                        "system_prompt": system_prompt}), t("Saved."))

vision_train.configure_section(project)  # vision-language: encoder, LLaVA files, both stages' memory

# --- memory estimate -----------------------------------------------------------------------------
st.subheader(t("Memory estimate"))
try:
    shape, est = estimate_for_project(project)
except EstimateError as e:
    show_error(e, level="info")
else:
    fit = fit_check(est, gpus, project.num_gpus)
    m1, m2, m3 = st.columns(3)
    m1.metric(t("Peak per GPU (estimate)"), human_bytes(est.per_gpu),
              help=t("What torch.cuda.max_memory_allocated would report; the fit check adds the CUDA context and "
                     "10% allocator slack ({total}).", total=human_bytes(est.with_overhead)))
    m2.metric(t("Trainable parameters"), count(est.trainable_params),
              t("{share} of {total}", share=f"{100 * est.trainable_params / max(1, est.total_params):.2f}%",
                total=count(est.total_params)), delta_color="off", delta_arrow="off")
    m3.metric(t("Data-parallel GPUs"), est.world_size)
    if fit.status == "no_gpu":
        st.info(t("No GPU detected here: this is the estimate for a GPU machine."))
    elif fit.status == "fits":
        st.success(t("Fits: about {need} of {have} on {gpu}.", need=human_bytes(fit.need), have=human_bytes(fit.have),
                     gpu=fit.gpu_name))
    elif fit.status == "tight":
        st.warning(t("Tight: about {need} of {have} on {gpu}. Lower the batch size or max length, or use DeepSpeed.",
                     need=human_bytes(fit.need), have=human_bytes(fit.have), gpu=fit.gpu_name))
    else:
        st.error(t("Too big: about {need} but {gpu} has {have}. Try QLoRA, a smaller max length or batch size, more "
                   "GPUs with DeepSpeed ZeRO, or offload.", need=human_bytes(fit.need), have=human_bytes(fit.have),
                   gpu=fit.gpu_name))
    parts = pd.DataFrame([{t("part"): t(k), t("per GPU"): human_bytes(v)} for k, v in est.parts.items()])
    st.dataframe(parts, hide_index=True, placeholder="—")
    if est.cpu_offload:
        st.caption(t("Offloaded to CPU memory: {size}.", size=human_bytes(est.cpu_offload)))
    for note in est.notes:
        st.caption(t(note))
    st.caption(t("From {source} ({params} parameters); no weights were loaded.", source=shape.source,
                 params=f"{shape.total_params:,}"))

# --- the generated config --------------------------------------------------------------------------
st.subheader(t("Generated XTuner config"))
here = system.device()
target = st.radio(t("Config for"), ["cuda", "cpu"], index=0 if here == "cuda" else 1, horizontal=True, key="cfg_device",
                  format_func=lambda d: t("a GPU machine") + (" " + t("(this one)") if d == here else "")
                  if d == "cuda" else t("the CPU") + (" " + t("(this one)") if d == here else ""))
try:
    text = render_config(spec_from_project(project, device=target, gpus=gpus))
except ConfigError as e:
    show_error(e, level="warning")
    st.stop()
st.caption(t("The Train page writes it into the run folder when you start."))
with st.expander(t("Show config.py")):
    st.code(text, language="python")
st.download_button(t("Download config.py"), text, file_name=f"{project.name}_config.py", mime="text/x-python",
                   icon=":material/download:")

# --- command line and Slurm ------------------------------------------------------------------------
st.subheader(t("On the command line"))
layout = commands.Layout.for_project(project)
st.caption(t("The same training with XTuner's own commands. They read the config from {path}:",
             path=f"`{layout.config}`"))
if st.button(t("Save config.py there"), key="cli_save", icon=":material/save:"):
    commands.write_config(layout, text)
    st.success(t("Written to {path}.", path=str(layout.config)))
master = "<master-node-address>"
if project.num_nodes > 1:
    master = st.text_input(t("Address of the first node (ADDR)"), value=master, key="cli_master")
try:
    tabs = st.tabs([t("Train"), t("Convert & merge"), t("Chat"), t("Script"), t("Slurm")])
    with tabs[0]:
        st.code(commands.env_line(), language="bash")
        for i, cmd in enumerate(commands.train_commands(project, layout, master_addr=master)):
            if project.num_nodes > 1:
                st.caption(t("on node {rank}", rank=i))
            st.code(cmd, language="bash")
    with tabs[1]:
        for cmd in commands.convert_commands(project, layout):
            st.code(cmd, language="bash")
    with tabs[2]:
        st.code(commands.chat_command(project, layout), language="bash")
    with tabs[3]:
        script = commands.shell_script(project, layout)
        st.code(script, language="bash")
        st.download_button(t("Download xtuner_flow.sh"), script, file_name="xtuner_flow.sh", mime="text/x-sh")
    with tabs[4]:
        s1, s2, s3, s4 = st.columns(4)
        partition = s1.text_input(t("Partition"), key="slurm_partition")
        job_name = s2.text_input(t("Job name"), value="xtuner", key="slurm_job")
        time_limit = s3.text_input(t("Time limit"), placeholder="24:00:00", key="slurm_time")
        cpus = s4.number_input(t("CPUs per task"), min_value=1, max_value=256, value=8, key="slurm_cpus")
        try:
            slurm = commands.slurm_script(project, layout, partition=partition.strip(), job_name=job_name.strip(),
                                          cpus_per_task=int(cpus), time_limit=time_limit.strip())
        except commands.CommandError as e:
            show_error(e)
        else:
            st.code(slurm, language="bash")
            st.download_button(t("Download train.slurm"), slurm, file_name="train.slurm", mime="text/x-sh")
except commands.CommandError as e:
    show_error(e, level="warning")
if target == "cpu":
    st.caption(t("`xtuner train` itself cannot train on a CPU (XTuner probes bf16 support on CUDA); the app runs it "
                 "through core.train.xtuner_entry, which patches that. Choose 'a GPU machine' above for the CLI."))
st.page_link("pages/train.py", label=t("Next: Train"), icon=":material/arrow_forward:")
