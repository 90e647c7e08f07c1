"""Step 1 · Model & Data: method, base model (a local folder, checked), dataset (checked, previewed)."""
import streamlit as st

from core import datasets, models, system
from core.fsutil import atomic_write_text, human_bytes
from core.paths import resolve_user_path
from core.project import METHOD_LABELS
from core.templates import template_names
from ui import session
from ui.frame import page_frame

page_frame()

st.title("1 · Model & Data")
project = session.require_project()

# --- method ------------------------------------------------------------------------------------
method = st.radio("Fine-tuning method", list(METHOD_LABELS), format_func=METHOD_LABELS.get,
                  index=list(METHOD_LABELS).index(project.method), horizontal=True)
if method == "qlora" and not system.gpus():
    st.warning("QLoRA needs an NVIDIA GPU and none was found here: training would be refused. "
               "Choose LoRA or full fine-tuning on this machine.")
if method != project.method:
    project = session.save_project(project.model_copy(update={"method": method}))

# --- model -------------------------------------------------------------------------------------
st.subheader("Base model")
model_path = st.text_input("Model folder on this machine", value=project.model_path or "",
                           placeholder="/data/models/internlm2_5-7b-chat",
                           help="A Hugging Face model folder (config.json, tokenizer, weights).")
if st.button("Check and use this model", key="check_model"):
    try:
        report = models.inspect_model(resolve_user_path(model_path))
    except ValueError as e:
        st.error(str(e))
    else:
        for err in report.errors:
            st.error(err)
        for warn in report.warnings:
            st.warning(warn)
        if report.ok:
            project = session.save_project(project.model_copy(update={
                "model_path": str(report.path),
                "prompt_template": report.template or project.prompt_template,
            }))
            st.success(f"{report.architecture or 'model'} · {report.model_type} · {human_bytes(report.size_bytes)} · "
                       f"template: {report.template or 'choose below'}")

names = template_names()
current = project.prompt_template if project.prompt_template in names else None
template = st.selectbox("Prompt template", names, index=names.index(current) if current else None,
                        placeholder="Choose the model's chat template",
                        help="How a conversation is turned into text for this model family (XTuner's PROMPT_TEMPLATE).")
if template and template != project.prompt_template:
    project = session.save_project(project.model_copy(update={"prompt_template": template}))

# --- dataset -----------------------------------------------------------------------------------
st.subheader("Dataset")
st.caption('OpenAI format: one record per line (JSONL) or a JSON array of '
           '`{"messages": [{"role": "user", "content": …}, {"role": "assistant", "content": …}]}`.')
tab_path, tab_upload = st.tabs(["File on this machine", "Upload"])
with tab_path:
    data_path = st.text_input("Dataset file", value=project.dataset_path or "", key="data_path",
                              help="Large files: give the path, do not upload.")
    if st.button("Check and use this dataset", key="check_data"):
        try:
            st.session_state["data_report"] = datasets.validate(resolve_user_path(data_path))
        except ValueError as e:
            st.error(str(e))
with tab_upload:
    upload = st.file_uploader("Dataset (.jsonl or .json)", type=["jsonl", "json"])
    if upload is not None and st.button("Check and use the uploaded file", key="use_upload"):
        target = project.data_dir / upload.name
        tmp = project.data_dir / f".check-{upload.name}"
        try:
            atomic_write_text(tmp, upload.getvalue().decode("utf-8"))
        except UnicodeDecodeError:
            st.error(f"{upload.name} is not UTF-8 text: save it as UTF-8 and upload again.")
        else:
            report = datasets.validate(tmp)
            if report.ok:
                tmp.replace(target)
                report.path = target
            else:
                tmp.unlink(missing_ok=True)
            st.session_state["data_report"] = report

report = st.session_state.get("data_report")
if report is not None:
    if report.errors:
        st.error(f"{report.path.name}: {len(report.errors)} problem(s); nothing was changed.")
        st.dataframe([{"where": f"line {i.line}" if i.line else "file", "field": i.field, "problem": i.message}
                      for i in report.errors], hide_index=True)
    else:
        if str(report.path) != project.dataset_path:
            project = session.save_project(project.model_copy(update={"dataset_path": str(report.path)}))
        st.success(f"{report.path.name}: {report.records} records ({report.format}).")
        if report.warnings:
            with st.expander(f"{len(report.warnings)} warning(s)"):
                for w in report.warnings[:50]:
                    st.write(str(w))
        st.session_state.pop("data_report", None)

if project.dataset_path:
    st.markdown(f"**In use:** `{project.dataset_path}`")
    preview = datasets.preview_records(project.dataset_path, 3)
    for rec in preview:
        with st.container(border=True):
            for m in rec.get("messages", []):
                st.markdown(f"**{m.get('role')}**: {m.get('content')}")

ready = bool(project.model_path and project.dataset_path and project.prompt_template)
if ready:
    st.page_link("pages/configure.py", label="Next: Configure", icon=":material/arrow_forward:")
