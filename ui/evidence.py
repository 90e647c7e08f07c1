"""Choosing a checkpoint with evidence, on a page: expected answers (Configure), the score heat-map
and the suggested checkpoint (Results, Convert)."""
from __future__ import annotations

import streamlit as st

from core.project import Project
from core import jobs
from core.results import best, charts, scoring, tensorboard
from core.train.runs import Run
from ui import job_status
from ui.errors import show_error
from ui.i18n import t


def expected_answer_inputs(project: Project, i: int, rev: int) -> scoring.ExpectedAnswer:
    """The expected answer of question ``i`` (inside the evaluation form)."""
    saved = project.evaluation_expected[i] if i < len(project.evaluation_expected) else scoring.ExpectedAnswer()
    c1, c2 = st.columns([3, 1])
    text = c1.text_area(t("Expected answer or key phrases, one per line (optional)"), value=saved.text, height=68,
                        key=f"eval_expected_{i}_{rev}", placeholder=t("e.g. Ada's assistant"),
                        help=t("Each checkpoint's answer is scored against this text, exactly as typed."))
    metrics = list(scoring.METRIC_LABELS)
    metric = c2.selectbox(t("Score by"), metrics, index=metrics.index(saved.metric), key=f"eval_metric_{i}_{rev}",
                          format_func=lambda m: t(scoring.METRIC_LABELS[m]))
    return scoring.ExpectedAnswer(text=text, metric=metric)


def suggestion(project: Project, run: Run) -> best.Suggestion | None:
    return best.suggest_for_run(run, project.evaluation_expected, project.evaluation_inputs)


def suggestion_text(s: best.Suggestion) -> str:
    parts = [t("Suggested checkpoint: **iter {iteration}**", iteration=s.iteration)]
    if s.mean_score is not None:
        parts.append(t("mean score {score:.0%}", score=s.mean_score))
    if s.heldout_loss is not None:
        parts.append(t("held-out loss {loss:.4f}", loss=s.heldout_loss))
    return " · ".join(parts)


def show_suggestion(project: Project, run: Run) -> None:
    s = suggestion(project, run)
    if s is not None:
        st.info(suggestion_text(s), icon=":material/star:")


def score_heatmap(project: Project, run: Run, answers: dict[int, list[str]], key: str) -> None:
    """Each scored question's score at each checkpoint, or how to get scores."""
    questions = run.spec.get("evaluation_inputs", [])
    expected = scoring.expected_by_question(project.evaluation_inputs, project.evaluation_expected)
    table = scoring.score_table(answers, questions, expected)
    if not table:
        st.caption(t("Give expected answers on Configure → Evaluation to score every checkpoint's answers."))
        return
    st.plotly_chart(charts.score_heatmap(table, questions, list(answers), tr=t), key=key)


def tensorboard_panel(run: Run) -> None:
    """The line that serves the run's TensorBoard events, and a button that serves them as a job."""
    with st.expander(t("TensorBoard"), icon=":material/insights:"):
        if not tensorboard.available():
            st.caption(t("TensorBoard is not installed in this environment (requirements.txt pins it)."))
            return
        job = jobs.read_job(tensorboard.job_dir(run))
        port = tensorboard.port_of(job) if job is not None and job.active else tensorboard.free_port()
        st.caption(t("The same from a shell on this machine (the app's environment activated):"))
        st.code(tensorboard.command_line(run, port), language="bash")
        st.caption(t("From your laptop, forward the port and browse to http://localhost:{port}: "
                     "ssh -N -L {port}:127.0.0.1:{port} <user>@<gpu-box>", port=port))
        if job is None or not job.active:
            if st.button(t("Start TensorBoard"), key=f"tb_start_{run.id}", icon=":material/play_arrow:"):
                try:
                    tensorboard.start(run, port)
                except jobs.JobBusy as e:
                    show_error(e)
                else:
                    st.rerun()
        job_status.panel(tensorboard.job_dir(run), t("TensorBoard"), key=f"tb_{run.id}",
                         running=t("TensorBoard serves this run on http://127.0.0.1:{port}", port=port))
