"""Step 2 · Configure: hyperparameters (each explained), evaluation questions, the generated config."""
import streamlit as st
from pydantic import ValidationError

from core import system
from core.configgen import ConfigError, render_config, spec_from_project
from core.presets import preset
from core.project import Hyperparams
from ui import session
from ui.frame import page_frame

page_frame()

st.title("2 · Configure")
project = session.require_project()
hp = project.hyperparams
FIELDS = Hyperparams.model_fields


def help_of(name: str) -> str:
    return FIELDS[name].description or ""


st.caption(f"Method: **{project.method.upper()}** · change it on Model & Data.")
if st.button(f"Reset to the {project.method.upper()} preset (XTuner's own config)", key="preset"):
    project = session.save_project(project.model_copy(update={"hyperparams": preset(project.method)}))
    st.rerun()

with st.form("hyperparams"):
    st.subheader("Basic")
    c1, c2, c3 = st.columns(3)
    values = {}
    values["lr"] = c1.number_input("Learning rate", value=float(hp.lr), min_value=1e-8, max_value=0.99,
                                   format="%.2e", step=1e-5, help=help_of("lr"))
    values["max_epochs"] = c2.number_input("Epochs", value=int(hp.max_epochs), min_value=1, max_value=1000,
                                           help=help_of("max_epochs"))
    values["max_length"] = c3.number_input("Max length (tokens)", value=int(hp.max_length), min_value=16,
                                           step=256, help=help_of("max_length"))
    values["batch_size"] = c1.number_input("Batch size per device", value=int(hp.batch_size), min_value=1,
                                           help=help_of("batch_size"))
    values["accumulative_counts"] = c2.number_input("Gradient accumulation", value=int(hp.accumulative_counts),
                                                    min_value=1, help=help_of("accumulative_counts"))
    values["warmup_ratio"] = c3.number_input("Warmup ratio", value=float(hp.warmup_ratio), min_value=0.0,
                                             max_value=0.99, step=0.01, help=help_of("warmup_ratio"))
    values["save_steps"] = c1.number_input("Save every (iterations)", value=int(hp.save_steps), min_value=1,
                                           help=help_of("save_steps"))
    values["save_total_limit"] = c2.number_input("Checkpoints kept", value=int(hp.save_total_limit),
                                                 min_value=-1, help=help_of("save_total_limit"))
    values["evaluation_freq"] = c3.number_input("Evaluate every (iterations)", value=int(hp.evaluation_freq),
                                                min_value=1, help=help_of("evaluation_freq"))
    values["pack_to_max_length"] = st.checkbox("Pack samples to max length", value=hp.pack_to_max_length,
                                               help=help_of("pack_to_max_length"))
    with st.expander("Advanced"):
        a1, a2, a3 = st.columns(3)
        values["optimizer"] = a1.selectbox("Optimizer", ["AdamW", "SGD"], index=["AdamW", "SGD"].index(hp.optimizer),
                                           help=help_of("optimizer"))
        values["weight_decay"] = a2.number_input("Weight decay", value=float(hp.weight_decay), min_value=0.0,
                                                 format="%.4f", help=help_of("weight_decay"))
        values["max_norm"] = a3.number_input("Gradient clip (max norm)", value=float(hp.max_norm), min_value=0.001,
                                             help=help_of("max_norm"))
        beta1 = a1.number_input("β1", value=float(hp.betas[0]), min_value=0.0, max_value=0.9999, format="%.4f",
                                help=help_of("betas"))
        beta2 = a2.number_input("β2", value=float(hp.betas[1]), min_value=0.0, max_value=0.99999, format="%.5f",
                                help=help_of("betas"))
        values["logging_interval"] = a3.number_input("Log every (iterations)", value=int(hp.logging_interval),
                                                     min_value=1, help=help_of("logging_interval"))
        disabled = project.method == "full"
        values["lora_r"] = a1.number_input("LoRA r", value=int(hp.lora_r), min_value=1, disabled=disabled,
                                           help=help_of("lora_r"))
        values["lora_alpha"] = a2.number_input("LoRA alpha", value=int(hp.lora_alpha), min_value=1,
                                               disabled=disabled, help=help_of("lora_alpha"))
        values["lora_dropout"] = a3.number_input("LoRA dropout", value=float(hp.lora_dropout), min_value=0.0,
                                                 max_value=0.99, disabled=disabled, help=help_of("lora_dropout"))
        seed = a1.text_input("Seed", value="" if hp.seed is None else str(hp.seed), help=help_of("seed"))
        values["dataloader_num_workers"] = a2.number_input("Dataloader workers", value=int(hp.dataloader_num_workers),
                                                           min_value=0, max_value=64,
                                                           help=help_of("dataloader_num_workers"))
    st.subheader("Evaluation")
    questions = st.text_area(
        "Evaluation questions (one per line, 1–10)", value="\n".join(project.evaluation_inputs),
        help="Asked every 'Evaluate every' iterations; the answers appear per checkpoint on Results.")
    system_prompt = st.text_area("System prompt (optional)", value=project.system_prompt,
                                 help="Given to the model before each evaluation question.")
    submitted = st.form_submit_button("Save", type="primary")

if submitted:
    qs = [q.strip() for q in questions.splitlines() if q.strip()]
    try:
        values["betas"] = (beta1, beta2)
        values["seed"] = int(seed) if seed.strip() else None
        new_hp = Hyperparams(**(hp.model_dump() | values))
        if not 1 <= len(qs) <= 10:
            raise ValueError("Give between 1 and 10 evaluation questions, one per line.")
        project = session.save_project(project.model_copy(update={
            "hyperparams": new_hp, "evaluation_inputs": qs, "system_prompt": system_prompt}))
    except ValidationError as e:
        st.error("; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()))
    except ValueError as e:
        st.error(str(e))
    else:
        st.success("Saved.")

# --- the generated config ----------------------------------------------------------------------
st.subheader("Generated XTuner config")
device = system.device()
try:
    text = render_config(spec_from_project(project, device=device))
except ConfigError as e:
    st.warning(str(e))
else:
    st.caption(f"For this machine ({device}). The Train page writes it into the run folder when you start.")
    with st.expander("Show config.py"):
        st.code(text, language="python")
    st.download_button("Download config.py", text, file_name=f"{project.name}_config.py", mime="text/x-python")
    st.page_link("pages/train.py", label="Next: Train", icon=":material/arrow_forward:")
