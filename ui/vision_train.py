"""Configure and Train, vision-language (XTuner's LLaVA): the project's encoder and two LLaVA files, the memory of
each stage, and the two linked runs — stage 1 (projector), then stage 2 from a stage-1 checkpoint.

The runs are ordinary runs of the project: the Train page's run panel shows their progress, charts, Stop and
Resume like any other."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import jobs
from core.errors import UserError
from core.fsutil import human_bytes
from core.models.estimate import EstimateError, encoder_shape, model_shape, vision_estimate
from core.project import ProjectError, VisionSetup
from core.vision import runs as vruns
from core.vision.evaluation import pairs_from_rows
from ui import session, vision_eval
from ui.errors import show_error
from ui.i18n import t


def configure_section(project) -> None:
    """The vision-language switch, its paths and the memory of both stages."""
    st.subheader(t("Vision-language (LLaVA)"))
    on = st.toggle(t("Train a vision-language model (two stages)"), value=project.vision is not None, key="vt_mode",
                   help=t("Stage 1 trains the projector between the vision encoder and the LLM on image captions; "
                          "stage 2 fine-tunes with LoRA on image conversations, starting from stage 1's projector."))
    if on != (project.vision is not None):
        try:
            project = session.save_project(project.model_copy(update={"vision": VisionSetup() if on else None}))
        except ProjectError as e:
            show_error(e)
            return
    if project.vision is None:
        return
    v = project.vision
    with st.form("vt_form"):
        encoder = st.text_input(t("Vision encoder folder (CLIP)"), value=v.encoder_path, key="vt_encoder",
                                placeholder="/models/clip-vit-large-patch14-336")
        c1, c2 = st.columns(2)
        pretrain = c1.text_input(t("Stage 1 LLaVA file (captions)"), value=v.pretrain_data, key="vt_pretrain")
        finetune = c2.text_input(t("Stage 2 LLaVA file (conversations)"), value=v.finetune_data, key="vt_finetune")
        images = st.text_input(t("Image folder"), value=v.image_folder, key="vt_images")
        c3, c4 = st.columns(2)
        lr = c3.number_input(t("Stage 1 learning rate"), min_value=1e-7, max_value=0.5, value=v.pretrain_lr,
                             format="%.2e", key="vt_lr",
                             help=t("The projector alone trains in stage 1 (XTuner's pretrain configs use 1e-3); "
                                    "stage 2 uses the learning rate above."))
        enc_lora = c4.checkbox(t("Stage 2: LoRA on the vision encoder too"), value=v.encoder_lora, key="vt_enc_lora")
        rows = vision_eval.pairs_editor(v.evaluation)
        saved = st.form_submit_button(t("Save vision-language settings"))
    if saved:
        try:
            update = VisionSetup(encoder_path=encoder.strip(), pretrain_data=pretrain.strip(),
                                 finetune_data=finetune.strip(), image_folder=images.strip(), pretrain_lr=lr,
                                 encoder_lora=enc_lora, evaluation=pairs_from_rows(rows))
            project = session.save_project(project.model_copy(update={"vision": update}))
        except UserError as e:  # ProjectError, or the evaluation rows (half-filled, too many)
            show_error(e)
            return
        st.success(t("Saved."))
        vision_eval.warn_unreadable(project.vision)
    memory(project)


def memory(project) -> None:
    """Each stage's estimated peak memory on one GPU, the encoder and the image tokens included."""
    if not project.model_path or not project.vision.encoder_path:
        return
    try:
        llm, enc = model_shape(project.model_path), encoder_shape(project.vision.encoder_path)
        ests = [vision_estimate(llm, enc, stage, project.method, project.hyperparams, project.vision.encoder_lora)
                for stage in (1, 2)]
    except EstimateError as e:
        show_error(e, level="info")
        return
    st.dataframe(pd.DataFrame([{
        t("stage"): t("Stage {n}", n=n),
        t("Peak per GPU (estimate)"): human_bytes(est.per_gpu),
        t("vision encoder"): human_bytes(est.parts["vision encoder"]),
        t("Trainable parameters"): f"{est.trainable_params:,}",
    } for n, est in zip((1, 2), ests)]), hide_index=True, placeholder="—")
    st.caption(t("The encoder has {params} parameters; each image adds {tokens} tokens to the LLM's sequence "
                 "(max length {length} + {tokens}).", params=f"{enc.params:,}", tokens=enc.image_tokens,
                 length=project.hyperparams.max_length))


def train_section(project, device: str, busy: bool) -> None:
    """Start stage 1; start stage 2 from a chosen stage-1 checkpoint (its projector: ``pretrained_pth``)."""
    if project.vision is None:
        return
    st.subheader(t("Vision-language: two stages"))
    c1, c2 = st.columns(2)
    if c1.button(t("Start stage 1"), key="vt_start1", icon=":material/play_arrow:", disabled=busy,
                 help=t("Pretrain: the LLM and the encoder frozen, the projector trained on the captions.")):
        start(project, 1, device, None)
    sources = vruns.stage1_checkpoints(project)
    if not sources:
        c2.caption(t("Stage 2 starts from a stage-1 checkpoint: train stage 1 first."))
        return
    i = c2.selectbox(t("Stage-1 checkpoint"), range(len(sources)), key="vt_source",
                     format_func=lambda i: f"{sources[i][0].id} · iter_{sources[i][1]}")
    run, it, path = sources[i]
    if c2.button(t("Start stage 2 from {source}", source=f"{run.id}/iter_{it}.pth"), key="vt_start2",
                 icon=":material/play_arrow:", disabled=busy,
                 help=t("Finetune: LoRA on the LLM, the projector from this checkpoint trained further.")):
        start(project, 2, device, str(path))


def start(project, stage: int, device: str, pretrained_pth) -> None:
    try:
        run = vruns.start_stage(project, stage, device, pretrained_pth)
    except jobs.JobBusy as e:
        show_error(e, lead=t("Another training run is using this machine:"), level="warning")
    except (UserError, OSError) as e:  # ConfigError is a UserError; OSError: disk full or I/O
        show_error(e)
    else:
        st.session_state["train_run_select"] = run.id
        st.rerun()
