"""Step 4 · Results: a run's curves, its evaluation answers checkpoint by checkpoint (with a diff),
one-click conversion of a checkpoint, and runs of the project compared."""
import pandas as pd
import streamlit as st

from core.results import compare, evals
from core.deploy import convert
from core import jobs
from core.train import runs
from core.machine import system
from core.fsutil import dir_size, human_bytes
from core.results.metrics import scalars_csv
from ui import evidence, job_status, run_charts, run_queue, session, vision_eval
from ui.frame import page_frame
from ui.errors import show_error
from ui.i18n import state_label, t

page_frame()

st.title(t("4 · Results"))
project = session.require_project()
all_runs = runs.list_runs(project)
if not all_runs:
    st.info(t("No run yet: start one on the Train page."))
    st.stop()

link = next((r for r in all_runs if r.id == st.query_params.get("run")), None)
if link is not None and st.session_state.get("results_run_link") != link.id:  # "Open results" of that run
    st.session_state["results_run_link"] = link.id
    st.session_state["results_run"] = link
run = st.selectbox(t("Run"), all_runs, format_func=lambda r: r.id, key="results_run")
job = run.job()
spec = run.spec
active = job is not None and job.active
st.caption(t("State: **{state}** · {n} checkpoint(s) · method {method}", state=state_label(job.state) if job else "—",
             n=len(run.checkpoints()), method=str(spec.get("method", "?")).upper()))

evidence.show_suggestion(project, run)

tab_curves, tab_evals, tab_ckpts, tab_compare = st.tabs(
    [t("Curves"), t("Evaluation answers"), t("Checkpoints"), t("Compare runs")])


# --- curves ----------------------------------------------------------------------------------------
def curves() -> bool:
    if not run_charts.show(run, "res", x_max=run.progress().get("max_iters")):
        st.caption(t("No data yet: the curves appear after the first logged iterations."))
    elif "memory" not in run_charts.curves_of(run).keys():
        st.caption(t("GPU memory: none logged (XTuner logs it on a GPU only)."))
    j = run.job()
    return j is not None and j.active


with tab_curves:
    job_status.live(active, curves, period=3.0)
    st.download_button(t("Download every point (CSV)"), data=lambda: scalars_csv(run.work_dir), key="res_csv",
                       file_name=f"{run.id}-scalars.csv", mime="text/csv", icon=":material/download:",
                       help=t("The charts draw at most 1000 points per curve (the lowest and highest of each "
                              "stretch, so spikes show); the file holds every logged point."))
    evidence.tensorboard_panel(run)

# --- evaluation answers ------------------------------------------------------------------------------
with tab_evals:
    questions, images = spec.get("evaluation_inputs", []), spec.get("evaluation_images") or []  # images: LLaVA
    answers = evals.timeline(run.work_dir, spec.get("prompt_template"), questions, spec.get("system_prompt", ""),
                             images=bool(images))
    if not answers:
        st.caption(t("No evaluation yet: answers are written at each checkpoint."))
    else:
        evidence.score_heatmap(project, run, answers, key="res_scores")
        iters = list(answers)
        mode = st.radio(t("View"), ["timeline", "diff"], horizontal=True, key="eval_mode",
                        format_func=lambda m: t("Timeline") if m == "timeline" else t("Diff two checkpoints"))
        if mode == "timeline":
            for qi, question in enumerate(questions):
                with st.expander(t("Q{n}: {question}", n=qi + 1, question=question), expanded=qi == 0):
                    previous, box = None, vision_eval.answer_column(images, qi)
                    for it in iters:
                        text = answers[it][qi] if qi < len(answers[it]) else ""
                        same = previous is not None and text == previous
                        box.markdown(f"**iter {it}**" + (" · " + t("unchanged") if same else ""))
                        if not same:
                            box.code(text or " ", language=None, wrap_lines=True, height=160 if len(text) > 400 else None)
                        previous = text
        else:
            d1, d2 = st.columns(2)
            a = d1.selectbox(t("From checkpoint"), iters, index=0, format_func=lambda i: f"iter {i}", key="diff_a")
            b = d2.selectbox(t("To checkpoint"), iters, index=len(iters) - 1, format_func=lambda i: f"iter {i}",
                             key="diff_b")
            for qi, question in enumerate(questions):
                ta = answers[a][qi] if qi < len(answers[a]) else ""
                tb = answers[b][qi] if qi < len(answers[b]) else ""
                st.markdown(t("**Q{n}: {question}** · similarity {sim:.0%}", n=qi + 1, question=question,
                              sim=evals.similarity(ta, tb)))
                vision_eval.thumbnail(images, qi)
                left, right = st.columns(2)
                left.code(ta or " ", language=None, wrap_lines=True, height=160 if len(ta) > 400 else None)
                right.code(tb or " ", language=None, wrap_lines=True, height=160 if len(tb) > 400 else None)
                st.html(evals.diff_html(ta, tb))

# --- checkpoints: one-click convert -------------------------------------------------------------------
with tab_ckpts:
    ckpts = run.checkpoints()
    if not ckpts:
        st.caption(t("No checkpoint yet."))
    device = system.device()
    evaluated = set(answers)
    for it, path in reversed(ckpts):
        out = convert.export_dir(run, it)
        cjob = jobs.read_job(out)
        c1, c2, c3 = st.columns([2, 2, 3])
        size = human_bytes(dir_size(path) if path.is_dir() else path.stat().st_size)
        c1.markdown(f"**{path.name}** · {size}")
        c2.caption(t("evaluated") if it in evaluated else t("no evaluation"))
        with c3:
            if cjob is None or cjob.state in ("failed", "stopped"):
                label = t("Convert this checkpoint") if cjob is None else t("Convert again ({state})", state=state_label(cjob.state))
                if st.button(label, key=f"convert_{run.id}_{it}", icon=":material/transform:"):
                    try:
                        convert.start_export(project, run, it, device)
                    except (FileNotFoundError, jobs.JobBusy) as e:
                        show_error(e)
                    else:
                        st.rerun()
            elif cjob.active:
                st.info(t("Converting… step {i}/{n}", i=cjob.current_step + 1, n=len(cjob.steps)))
            else:
                st.success(t("Converted"))
    if any(jobs.read_job(convert.export_dir(run, it)) is not None for it, _ in ckpts):
        st.page_link("pages/convert_chat.py", label=t("Chat with the converted models"), icon=":material/chat:")

# --- compare runs -------------------------------------------------------------------------------------
with tab_compare:
    run_queue.sweep_tables(project, all_runs)  # each sweep as one table
    if len(all_runs) < 2:
        st.caption(t("One run so far: start another on the Train page (e.g. with another learning rate) to compare."))
    else:
        by_id = {r.id: r for r in all_runs}
        chosen = st.multiselect(t("Runs"), list(by_id), default=list(by_id)[:2], key="compare_runs",
                                placeholder=t("Choose runs"))
        if chosen:
            run_charts.compare_runs([by_id[i] for i in chosen], "cmp")
        if len(chosen) >= 2:
            st.markdown(t("**What differs** between {a} and {b}", a=chosen[0], b=chosen[1]))
            ra, rb = by_id[chosen[0]], by_id[chosen[1]]
            rows = [{t("setting"): k, chosen[0]: repr(va), chosen[1]: repr(vb)} for k, va, vb in compare.spec_diff(ra, rb)]
            if rows:
                st.dataframe(pd.DataFrame(rows), hide_index=True, placeholder="—", width="stretch")
            else:
                st.caption(t("Same settings."))
            with st.expander(t("config.py diff")):
                st.code(compare.config_diff(ra, rb) or t("identical"), language="diff")
