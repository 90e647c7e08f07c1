"""Model & Data for preference tuning: the objective (SFT / DPO / ORPO) and the preference pairs
(upload or a file on this machine; validated with line and field, converted to XTuner's form)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import streamlit as st

from core.data import preference
from core.paths import resolve_user_path
from ui import session
from ui.dataset_picker import _free_name
from ui.errors import show_error
from ui.i18n import t

OBJECTIVE_LABELS = {
    "sft": "Supervised fine-tuning (SFT): learn the answers",
    "dpo": "DPO: prefer the chosen answer over the rejected one",
    "orpo": "ORPO: learn the chosen answers and prefer them, no reference model",
}
FORMAT_HELP = ('XTuner `{"prompt": [{"role": "user", …}], "chosen": [{"role": "assistant", …}], "rejected": […]}`; '
               'the same with plain texts; orca_dpo_pairs `{"system", "question", "chosen", "rejected"}`; or two '
               'conversations `{"chosen": […], "rejected": […]}` that differ only in their last answer — JSONL, a '
               'JSON array or Parquet.')
REPORT = "md_pref_report"


def objective_choice(project):
    """The objective radio; saves a change."""
    labels = {t(text): key for key, text in OBJECTIVE_LABELS.items()}
    choice = st.radio(t("Training objective"), list(labels), index=list(OBJECTIVE_LABELS).index(project.objective),
                      key="md_objective",
                      help=t("DPO and ORPO train on preference pairs: a prompt, a chosen and a rejected answer. "
                             "DPO with LoRA uses the base model (adapter switched off) as its reference."))
    objective = labels[choice]
    if objective != project.objective:
        project = session.save_project(project.model_copy(update={"objective": objective}))
    return project


def _check(path: Path, shown_name: str | None = None) -> preference.PreferenceReport:
    with st.spinner(t("Checking every record of {name}…", name=shown_name or path.name)):
        report = preference.validate(path)
    if shown_name:
        report.path = Path(shown_name)
        for issue in report.errors:
            issue.file = shown_name
    return report


def _upload_tab(project) -> None:
    upload = st.file_uploader(t("Preference file (.jsonl, .json or .parquet; up to 200 MB — larger: give its path)"),
                              type=["jsonl", "json", "parquet"], key="md_pref_upload",
                              on_change=lambda: st.session_state.pop(REPORT, None))
    if upload is not None and st.button(t("Check the uploaded file"), key="md_pref_use_upload"):
        name = Path(upload.name).name
        project.data_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=Path(name).suffix, dir=project.data_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(upload.getvalue())
        report = _check(Path(tmp), name)
        if report.ok:
            target = _free_name(project.data_dir / name)
            os.replace(tmp, target)
            report = _check(target)
        else:
            Path(tmp).unlink(missing_ok=True)
        st.session_state[REPORT] = report


def _path_tab() -> None:
    raw = st.text_input(t("Preference file on this machine"), value="", key="md_pref_path",
                        placeholder="/data/pairs.jsonl", help=t("Large files: give the path, do not upload."))
    if st.button(t("Check this file"), key="md_pref_check_path"):
        try:
            st.session_state[REPORT] = _check(resolve_user_path(raw))
        except ValueError as e:
            st.session_state.pop(REPORT, None)
            show_error(e)


def _last_text(messages: list[dict]) -> str:
    return messages[-1]["content"] if messages else ""


def _show_report(project):
    report = st.session_state.get(REPORT)
    if report is None:
        return project
    if report.error_count:
        st.error(t("{file}: {n} problem(s) found; nothing was changed.", file=report.path.name, n=report.error_count),
                 icon=":material/error:")
        st.dataframe([{t("line"): i.line or "", t("field"): i.field, t("problem"): t(i.text, **i.params)}
                      for i in report.errors], hide_index=True, placeholder="—")
        if report.error_count > len(report.errors):
            st.caption(t("The first {shown} of {n} are listed.", shown=len(report.errors), n=report.error_count))
        return project
    st.success(t("{file}: {records} preference pairs ({label}), read in {seconds:.1f} s.", file=report.path.name,
                 records=report.records, label=report.label, seconds=report.seconds), icon=":material/check_circle:")
    st.dataframe([{t("prompt"): _last_text(p["prompt"]), t("chosen"): _last_text(p["chosen"]),
                   t("rejected"): _last_text(p["rejected"])} for p in report.preview[:3]], hide_index=True, placeholder="—")
    if report.needs_conversion:
        st.info(t("XTuner trains on its own preference JSONL: convert this {label} file (the original stays).",
                  label=report.label))
    if st.button(t("Convert and use") if report.needs_conversion else t("Use these pairs"), key="md_pref_use",
                 type="primary"):
        path = report.path
        if report.needs_conversion:
            out = _free_name(project.data_dir / preference.converted_name(report.path))
            res = preference.convert(report.path, out)
            if res.out_path is None:
                st.session_state[REPORT] = res.report
                st.rerun()
            path = res.out_path
        project = session.save_project(project.model_copy(update={"preference_path": str(path)}))
        st.session_state.pop(REPORT, None)
        st.rerun()
    return project


def section(project):
    """The preference pairs of a DPO / ORPO project."""
    st.subheader(t("Preference pairs"))
    if project.preference_path:
        st.markdown(t("**In use:** `{path}`", path=project.preference_path))
    st.caption(t(FORMAT_HELP))
    tabs = st.tabs([t("Upload"), t("File on this machine")])
    with tabs[0]:
        _upload_tab(project)
    with tabs[1]:
        _path_tab()
    return _show_report(project)
