"""Step 1 · Model & Data: method; base model (catalog download or your own folder, checked and
cross-checked); dataset (catalog, upload, path or built; validated, converted); the data explained."""
import streamlit as st

from core.machine import system
from core.project import METHOD_LABELS
from ui import data_insight, dataset_picker, model_picker, preference_picker, session, vision_picker
from ui.frame import page_frame
from ui.i18n import t

page_frame()

st.title(t("1 · Model & Data"))
project = session.require_project()

if st.session_state.get("md_flash"):
    st.toast(st.session_state.pop("md_flash"))

# --- method ------------------------------------------------------------------------------------
labels = {t(text): key for key, text in METHOD_LABELS.items()}
choice = st.radio(t("Fine-tuning method"), list(labels), index=list(METHOD_LABELS).index(project.method),
                  horizontal=True)
method = labels[choice]
if method == "qlora" and not system.gpus():
    st.warning(t("QLoRA needs an NVIDIA GPU and none was found here: training would be refused. "
                 "Choose LoRA or full fine-tuning on this machine."))
if method != project.method:
    project = session.save_project(project.model_copy(update={"method": method}))

project = preference_picker.objective_choice(project)

project = model_picker.section(project)
if project.objective == "sft":
    project = dataset_picker.section(project)
    vision_picker.section(project)
    data_insight.section(project)
else:
    project = preference_picker.section(project)

data = project.dataset_path if project.objective == "sft" else project.preference_path
if project.model_path and data and project.prompt_template:
    st.page_link("pages/configure.py", label=t("Next: Configure"), icon=":material/arrow_forward:")
