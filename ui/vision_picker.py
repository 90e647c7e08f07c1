"""Model & Data, vision-language: check a LLaVA dataset (JSON/JSONL + image folder) record by record."""
from __future__ import annotations

import streamlit as st

from core.fsutil import human_bytes
from core.models import catalog
from core.models.catalog import SOURCE_LABELS
from core.models.estimate import encoder_shape_from_config
from core.paths import resolve_user_path
from core.project import ProjectError, VisionSetup
from core.vision import dataset as vdataset
from ui import data_insight, downloads, session
from ui.errors import show_error
from ui.i18n import t


def section(project) -> None:
    encoder_section(project)
    with st.expander(t("Vision-language (LLaVA) dataset"), icon=":material/image:"):
        st.caption(t("A LLaVA file: records with \"image\" (a path inside the image folder) and ShareGPT "
                     "\"conversations\" whose first question holds <image>. Every record and image is checked; "
                     "nothing is changed."))
        data = st.text_input(t("LLaVA file (.json or .jsonl) on this machine"), key="vl_data",
                             placeholder="/data/llava/finetune.json")
        folder = st.text_input(t("Image folder"), key="vl_images", placeholder="/data/llava/images")
        if st.button(t("Check the LLaVA dataset"), key="vl_check"):
            st.session_state.pop("vl_report", None)
            try:
                path, images = resolve_user_path(data), resolve_user_path(folder)
            except ValueError as e:
                show_error(e)
                return
            with st.spinner(t("Checking every record of {name}…", name=path.name)):
                st.session_state["vl_report"] = vdataset.validate(path, images)
        report = st.session_state.get("vl_report")
        if report is not None:
            show_report(report)
            if report.ok:
                use_buttons(project, report)
                preview(project, report)


def show_report(report) -> None:
    if report.error_count:
        st.error(t("{file}: {n} problem(s) found; nothing was changed.", file=report.path.name,
                   n=report.error_count), icon=":material/error:")
        st.dataframe([{t("line"): i.line or "", t("field"): i.field, t("problem"): t(i.text, **i.params)}
                      for i in report.errors], hide_index=True, placeholder="—")
        return
    s = report.images
    st.success(t("{file}: {records} records, {with_image} with an image; {images} images ({size}), sides "
                 "{small}–{large} px, read in {seconds:.1f} s.", file=report.path.name, records=report.records,
                 with_image=report.with_image, images=s.count, size=human_bytes(s.bytes), small=s.min_side,
                 large=s.max_side, seconds=report.seconds), icon=":material/check_circle:")
    if report.warnings:
        st.dataframe([{t("line"): i.line or "", t("field"): i.field, t("warning"): t(i.text, **i.params)}
                      for i in report.warnings], hide_index=True, placeholder="—")


def use_buttons(project, report) -> None:
    """Put a checked file and its image folder into the project's vision-language settings."""
    vision = project.vision or VisionSetup()
    c1, c2 = st.columns(2)
    for col, field, label in ((c1, "pretrain_data", t("Use for stage 1 (captions)")),
                              (c2, "finetune_data", t("Use for stage 2 (conversations)"))):
        if getattr(vision, field) == str(report.path) and vision.image_folder == str(report.image_folder):
            col.success(t("In use for this stage."), icon=":material/check_circle:")
        elif col.button(label, key=f"vl_use_{field}"):
            update = vision.model_copy(update={field: str(report.path), "image_folder": str(report.image_folder)})
            try:
                session.save_project(project.model_copy(update={"vision": update}))
            except ProjectError as e:
                show_error(e)
            else:
                st.rerun()


def preview(project, report) -> None:
    """The first records: each picture beside its conversation rendered in the template, the loss mask marked."""
    render = data_insight.renderer(project)
    if render is None:
        return
    for rec in report.preview[:3]:
        thumb, text = st.columns([1, 4])
        image = vdataset.preview_image(report, rec)
        if image is not None:
            thumb.image(str(image), width=96)
        else:
            thumb.caption(t("no image"))
        text.html(render(vdataset.record_turns(rec)))


def encoder_section(project) -> None:
    """The catalog's vision encoders: hub ids and where they were taken from, a download, use it in the project."""
    entries = catalog.encoders()
    if not entries:
        return
    with st.expander(t("Vision encoder (vision-language)"), icon=":material/visibility:"):
        entry = st.selectbox(t("Encoder from the catalog"), entries, key="vl_encoder_entry",
                             format_func=lambda e: e.name)
        shape = encoder_shape_from_config(entry.config)
        st.caption(t("{params} parameters · {tokens} image tokens per picture · licence {license}",
                     params=f"{shape.params:,}", tokens=shape.image_tokens, license=entry.license or "—"))
        st.markdown(" · ".join(f"{SOURCE_LABELS[s]}: `{repo}`" for s, repo in entry.sources.items())
                    + (f"  \n{t(entry.note)}" if entry.note else ""))
        st.caption(t("Where the id comes from: `{source}`", source=entry.source))
        if not entry.trains:
            st.warning(t("XTuner 0.2.0's LLaVA loads the encoder as a CLIP vision model: this one cannot be trained "
                         "here; it is listed for comparison and the memory estimate."), icon=":material/block:")
            return
        used = project.vision.encoder_path if project.vision else ""
        dest = downloads.panel(project.download_cache, "model", entry.id, entry.sources, project.download_sources,
                               int(entry.size_gb * 1e9), project.hub_endpoints, entry.name, used)
        if dest is not None and str(dest) != used and st.button(
                t("Use this encoder for vision-language training"), key="vl_use_encoder", type="primary"):
            vision = (project.vision or VisionSetup()).model_copy(update={"encoder_path": str(dest)})
            session.save_project(project.model_copy(update={"vision": vision}))
            st.rerun()
        if used and dest is not None and str(dest) == used:
            st.success(t("The project's vision encoder."), icon=":material/check_circle:")
