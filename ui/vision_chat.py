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
    if out.hf_llava:
        st.caption(t("For transformers: `{path}` (LlavaForConditionalGeneration and AutoProcessor load it; the prompt "
                     "uses the {template} template).", path=out.hf_llava, template=out.template))
    image = st.file_uploader(t("Image (.png, .jpg)"), type=["png", "jpg", "jpeg"], key="vl_image")
    question = st.text_input(t("Question"), value=QUESTION, key="vl_question")
    if image is not None:
        st.image(image.getvalue(), width=160)
    asked = st.button(t("Ask both models"), key="vl_ask", disabled=image is None or not question.strip())
    if asked:
        st.session_state["vl_answers"] = {"image": image.name, "question": question, "answers": None}
    shown = st.session_state.get("vl_answers")
    if shown and shown["answers"] is None and not asked:  # a rerun cut the earlier answering short
        st.session_state.pop("vl_answers")
        return
    if not shown:
        return
    box = st.container(key="vl_answers_box")
    box.caption(t("About {image}: {question}", image=shown["image"], question=shown["question"]))
    c1, c2 = box.columns(2)
    c1.markdown(t("**Base** (untrained projector)"))
    c2.markdown(t("**Fine-tuned**"))
    holders = [c1.container(key="vl_answer_base").empty(), c2.container(key="vl_answer_tuned").empty()]
    if shown["answers"] is None:
        shown["answers"] = answer_both(out, image.getvalue(), question, holders)
    for holder, text in zip(holders, shown["answers"]):
        holder.markdown(text or "…")


def answer_both(out, data: bytes, question: str, holders) -> list[str]:
    """Both models' answers, streamed into ``holders`` as they are generated (an error is shown in its place)."""
    try:
        with st.spinner(t("Loading the models…")):
            from core.deploy import chat
            from core.vision import chat as vchat

            models = [_load(out.base_llm, out.encoder, None, None),
                      _load(str(out.llm), out.encoder, str(out.projector),
                            str(out.encoder_adapter) if out.encoder_adapter else None)]
        streams = [vchat.start_stream(vm, io.BytesIO(data), question, out.template) for vm in models]
    except Exception as e:  # noqa: BLE001 - a damaged output or image is shown, not raised
        show_error(e, lead=t("Cannot answer:"))
        return ["", ""]
    while not all(s.done for s in streams):
        for holder, s in zip(holders, streams):
            holder.markdown((s.text or "") + " ▌")
        chat.wait_any(streams, 0.05)
    return [s.text if not s.error else f":red[{s.error}]" for s in streams]
