"""Step 4 · Results: a run's curves and its evaluation answers checkpoint by checkpoint."""
import streamlit as st

from core import charts, runs
from core.metrics import ScalarsReader, eval_outputs
from ui import session
from ui.frame import page_frame

page_frame()

st.title("4 · Results")
project = session.require_project()
all_runs = runs.list_runs(project)
if not all_runs:
    st.info("No run yet: start one on the Train page.")
    st.stop()

run = st.selectbox("Run", all_runs, format_func=lambda r: r.id, key="results_run")
reader = ScalarsReader(run.work_dir)
reader.poll()

cols = st.columns(3)
for col, (key, title) in zip(cols, [("loss", "Loss"), ("lr", "Learning rate"), ("grad_norm", "Gradient norm")]):
    xs, ys = reader.series(key)
    if not xs:
        col.caption(f"{title}: no data yet")
    elif key == "loss":
        col.plotly_chart(charts.loss_figure(xs, ys), key=f"res_{key}")
    else:
        col.plotly_chart(charts.line_figure(xs, ys, title, key), key=f"res_{key}")

st.subheader("Evaluation answers per checkpoint")
answers = eval_outputs(run.work_dir)
questions = run.info.get("spec", {}).get("evaluation_inputs", [])
if not answers:
    st.caption("No evaluation yet: answers are written at each checkpoint.")
for iteration, texts in sorted(answers.items(), reverse=True):
    with st.expander(f"Iteration {iteration}", expanded=iteration == max(answers)):
        for i, text in enumerate(texts):
            q = questions[i] if i < len(questions) else f"Question {i + 1}"
            st.markdown(f"**{q}**")
            st.code(text, language=None, wrap_lines=True)
