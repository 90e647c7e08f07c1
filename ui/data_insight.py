"""Understand the data: rows rendered with the template (trained tokens highlighted), token lengths
against max_length, dataset size in tokens and steps per epoch."""
from __future__ import annotations

import html
from pathlib import Path

import streamlit as st

from core.data import datasets, datastats
from core import jobs
from core.data.chatrender import xtuner_segments
from core.models.folder import read_tokenizer_info
from ui import job_status
from ui.errors import show_job_end
from ui.i18n import t

TRAINED = "background:#c9f2d0;color:#0b4a1a;border-radius:3px"
SPECIAL = "color:#8a8a8a"


def segments_html(segments) -> str:
    parts = []
    for s in segments:
        text = html.escape(s.text)
        if s.trained:
            parts.append(f'<span style="{TRAINED}">{text}</span>')
        elif s.kind in ("bos", "eos"):
            parts.append(f'<span style="{SPECIAL}">{text}</span>')
        else:
            parts.append(f"<span>{text}</span>")
    return ('<div style="white-space:pre-wrap;font-family:monospace;font-size:0.85em;border:1px solid #ddd;'
            'padding:8px;border-radius:6px;margin-bottom:8px">' + "".join(parts) + "</div>")


def renderer(project):
    """A function turning XTuner turns into HTML in the project's template with the loss mask (its caption
    shown), or None with a hint when the project has no template yet."""
    template = project.prompt_template
    if not template:
        st.caption(t("Choose a prompt template to see the rows as the model will see them."))
        return None
    tok = read_tokenizer_info(Path(project.model_path)) if project.model_path else None
    bos, eos = (tok.xtuner_bos, tok.eos) if tok else ("", "")
    st.caption(t("The first rows as XTuner's {template} template renders them. :green-background[Highlighted] text "
                 "is trained (the loss mask); the rest is context only.", template=template))
    return lambda turns: segments_html(xtuner_segments(turns, template, bos, eos))


def preview(project) -> None:
    render = renderer(project)
    if render is None:
        return
    for line, turns in datasets.preview_turns(project.dataset_path, 3):
        if not turns:
            st.caption(t("line {line}: nothing to train — XTuner drops this record.", line=line))
            continue
        st.html(render(turns))


def _histogram(lengths, max_length: int):
    import numpy as np
    import plotly.graph_objects as go

    arr = np.frombuffer(lengths, dtype=np.uint32) if len(lengths) else np.zeros(1, dtype=np.uint32)
    top = max(int(arr.max()), int(max_length * 1.1), 1)
    counts, edges = np.histogram(arr, bins=min(60, top), range=(0, top))
    centers = (edges[:-1] + edges[1:]) / 2
    colors = ["#d9534f" if c > max_length else "#4c78a8" for c in centers]
    fig = go.Figure(go.Bar(x=centers, y=counts, marker_color=colors, width=(edges[1] - edges[0]) * 0.95,
                           hovertemplate="%{x:.0f} tokens: %{y} rows<extra></extra>"))
    fig.add_vline(x=max_length, line_dash="dash", line_color="#d9534f",
                  annotation_text=f"max_length = {max_length}", annotation_position="top right")
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=t("tokens per row"),
                      yaxis_title=t("rows"), bargap=0)
    return fig


def stats_dir(project) -> Path:
    return project.dir / "datastats"


def _counting(out_dir: Path) -> bool:
    st.progress(0.5, text=t("Counting tokens with the model's tokenizer…"))
    job = jobs.read_job(out_dir)
    return job is not None and job.active


def token_stats(project) -> None:
    out = stats_dir(project)
    if not (project.model_path and project.prompt_template):
        st.caption(t("Choose a model and a template to count tokens."))
        return
    job = jobs.read_job(out)
    result = datastats.result(out)
    current = result is not None and result.get("data") == str(Path(project.dataset_path).resolve()) and \
        result.get("model") == str(Path(project.model_path).resolve()) and result.get("template") == project.prompt_template
    if job is not None and job.active:
        job_status.live(True, lambda: _counting(out), period=1.0)
        return
    if st.button(t("Count tokens") if not current else t("Count again"), key="md_count_tokens",
                 help=t("Tokenizes every row with the model's tokenizer in the background (nothing is loaded here).")):
        try:
            datastats.start(out, project.dataset_path, project.model_path, project.prompt_template,
                            project.trust_remote_code)
        except jobs.JobBusy:
            pass
        st.rerun()
    if job is not None and job.state == "failed" and not current:
        show_job_end(job, t("Counting tokens"))
        st.code(job_status.log_tail(out, "tokens") or " ", language="log")
        return
    if not current:
        return
    lengths = datastats.read_lengths(out)
    hp = project.hyperparams
    trunc = datastats.truncation(lengths, hp.max_length)
    steps = datastats.steps_per_epoch(lengths, hp.max_length, hp.pack_to_max_length, hp.batch_size,
                                      hp.accumulative_counts, project.num_gpus)
    c = st.columns(5)
    c[0].metric(t("Rows trained"), f"{result['records']:,}")
    c[1].metric(t("Tokens"), f"{result['tokens']:,}", help=t("{trained} of them trained (the answers)",
                                                             trained=f"{result['trained_tokens']:,}"))
    c[2].metric(t("Longest row"), f"{result['max']:,}", help=t("median {p50}, 95% below {p95}", p50=result["p50"],
                                                               p95=result["p95"]))
    c[3].metric(t("Cut by max_length"), f"{trunc['share']:.1%}", help=t("{n} rows are longer than max_length = {m} "
                                                                         "and lose their end", n=trunc["over"],
                                                                         m=hp.max_length))
    c[4].metric(t("Iterations per epoch"), f"{steps['iterations']:,}",
                help=t("{samples} training samples ({packed}), batch {batch} × {gpus} GPU(s); {opt} optimizer steps "
                       "with gradient accumulation {acc}.", samples=steps["samples"],
                       packed=t("packed to max_length") if hp.pack_to_max_length else t("one row each"),
                       batch=hp.batch_size, gpus=max(1, project.num_gpus), opt=steps["optimizer_steps"],
                       acc=hp.accumulative_counts))
    st.plotly_chart(_histogram(lengths, hp.max_length), key="md_length_hist")
    if trunc["share"] > 0.05:
        st.warning(t("{share:.0%} of the rows are longer than max_length and will be cut: raise max_length on "
                     "Configure, or shorten those rows.", share=trunc["share"]))
    st.caption(t("max_length, batch size and packing come from Configure."))


def section(project) -> None:
    if not project.dataset_path:
        return
    st.subheader(t("Understand the data"))
    preview(project)
    token_stats(project)
