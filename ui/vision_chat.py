"""Convert & Chat, vision-language: ask the base and the fine-tuned LLaVA model about an uploaded image."""
from __future__ import annotations

import io

import streamlit as st

from core import jobs
from core.deploy.convert import export_dir
from core.errors import UserError
from core.train.runs import list_runs
from core.vision import runs as vruns
from ui import job_status
from ui.errors import show_error
from ui.i18n import t

QUESTION = "What is in the picture?"  # the model's input, not a label: not translated


@st.cache_resource(max_entries=2, show_spinner=False)
def _load(llm: str, encoder: str, projector: str | None, adapter: str | None):
    from core.vision import chat as vchat

    return vchat.load(llm, encoder, projector, encoder_adapter=adapter)


def section(project, device: str) -> None:
    stage2 = [r for r in list_runs(project) if r.spec.get("stage") == 2 and r.checkpoints()]
    if not stage2:
        return
    st.subheader(t("Ask about an image (vision-language)"))
    c1, c2 = st.columns(2)
    run = c1.selectbox(t("Stage-2 run"), stage2, format_func=lambda r: r.id, key="vl_conv_run")
    iteration = c2.selectbox(t("Checkpoint"), [i for i, _ in run.checkpoints()][::-1],
                             format_func=lambda i: f"iter_{i}.pth", key="vl_conv_iter")
    out_dir = export_dir(run, iteration)
    job = jobs.read_job(out_dir)
    if st.button(t("Convert for image chat (pth_to_hf + merge)"), key="vl_convert", icon=":material/transform:",
                 disabled=job is not None and job.active):
        try:
            vruns.start_convert(project, run, iteration, device)
        except (UserError, jobs.JobBusy) as e:
            show_error(e)
        else:
            st.rerun()
    job_status.panel(out_dir, t("Conversion"), key=f"vl_convert_{out_dir}", period=1.5)
    outputs = vruns.vision_outputs(project)
    if not outputs:
        return
    out = st.selectbox(t("Converted stage-2 checkpoint"), outputs, key="vl_output",
                       format_func=lambda o: f"{o.run.id} · iter {o.iteration}")
    image = st.file_uploader(t("Image (.png, .jpg)"), type=["png", "jpg", "jpeg"], key="vl_image")
    question = st.text_input(t("Question"), value=QUESTION, key="vl_question")
    if image is not None:
        st.image(image.getvalue(), width=160)
    if st.button(t("Ask both models"), key="vl_ask", disabled=image is None or not question.strip()):
        try:
            with st.spinner(t("Loading the models and answering…")):
                from core.vision import chat as vchat

                base = _load(out.base_llm, out.encoder, None, None)
                tuned = _load(str(out.llm), out.encoder, str(out.projector),
                              str(out.encoder_adapter) if out.encoder_adapter else None)
                data = image.getvalue()
                st.session_state["vl_answers"] = [
                    vchat.answer(vm, io.BytesIO(data), question, out.template) for vm in (base, tuned)]
        except Exception as e:  # noqa: BLE001 - a damaged output or image is shown, not raised
            st.session_state.pop("vl_answers", None)
            show_error(e, lead=t("Cannot answer:"))
    answers = st.session_state.get("vl_answers")
    if answers:
        c1, c2 = st.columns(2)
        c1.markdown(t("**Base** (untrained projector)"))
        c1.code(answers[0], language=None, wrap_lines=True)
        c2.markdown(t("**Fine-tuned**"))
        c2.code(answers[1], language=None, wrap_lines=True)
