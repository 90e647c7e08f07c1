"""Model & Data, vision-language: check a LLaVA dataset (JSON/JSONL + image folder) record by record."""
from __future__ import annotations

import streamlit as st

from core.fsutil import human_bytes
from core.paths import resolve_user_path
from core.vision import dataset as vdataset
from ui.errors import show_error
from ui.i18n import t


def section(project) -> None:
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
