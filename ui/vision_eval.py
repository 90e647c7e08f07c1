"""Vision-language evaluation on the pages: the Configure editor of (image, question) pairs, and on Results each
question's answers beside a thumbnail of its image."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from core.train.configgen import ConfigError
from core.train.hyperparams import MAX_EVALUATION_QUESTIONS
from core.vision.configgen import eval_image
from ui.errors import show_error
from ui.i18n import t

THUMBNAIL_PX = 160


def pairs_editor(pairs) -> list[dict]:
    """The project's pairs as an editable table (rows added and deleted); its rows ``{"image", "question"}``."""
    st.markdown(t("**Evaluation pictures**: a question about each, asked at every checkpoint of both stages "
                  "(at most {n})", n=MAX_EVALUATION_QUESTIONS))
    table = pd.DataFrame([{"image": p.image, "question": p.question} for p in pairs],
                         columns=["image", "question"], dtype=str)
    edited = st.data_editor(table, num_rows="dynamic", key="vt_eval", hide_index=True, placeholder="—",
                            column_config={
                                "image": st.column_config.TextColumn(
                                    t("Image path"), help=t("Absolute, or relative to the image folder."),
                                    width="medium"),
                                "question": st.column_config.TextColumn(t("Question"), width="large")})
    return edited.to_dict("records")


def warn_unreadable(vision) -> None:
    """A warning for each saved evaluation image that a stage would refuse (missing, not a picture)."""
    for pair in vision.evaluation:
        try:
            eval_image(pair.image, vision.image_folder)
        except ConfigError as e:
            show_error(e, level="warning")


def thumbnail(images: list[str], i: int, where=st) -> None:
    """The ``i``-th evaluation image, small, or a caption naming it when the file is gone."""
    if i >= len(images):
        return
    if os.path.isfile(images[i]):
        where.image(images[i], width=THUMBNAIL_PX, caption=os.path.basename(images[i]))
    else:
        where.caption(t("image missing: {path}", path=images[i]))


def answer_column(images: list[str], i: int):
    """Where question ``i``'s answers go: beside its image for a vision run, else the whole width."""
    if not images:
        return st.container()
    left, right = st.columns([1, 3])
    thumbnail(images, i, left)
    return right
