"""Model & Data, the dataset half: catalog, upload, server path, builders; the validation report,
conversion to OpenAI JSONL, and choosing the dataset."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import streamlit as st

from core.models import catalog, hub
from core.data import databuild, datasets
from core.models.catalog import SOURCE_LABELS
from core.fsutil import human_bytes
from core.paths import resolve_user_path
from ui import downloads, session
from ui.errors import show_error
from ui.i18n import t

FORMAT_HELP = ('OpenAI `{"messages": [{"role": "user", "content": …}, {"role": "assistant", "content": …}]}`, '
               'XTuner `{"conversation": [{"input", "output"}]}`, Alpaca `{"instruction", "input", "output"}`, '
               'ShareGPT `{"conversations": [{"from", "value"}]}` — JSONL, a JSON array or Parquet.')


def check(path: Path) -> None:
    """Validate a file and keep the report for the page."""
    with st.spinner(t("Checking every record of {name}…", name=path.name)):
        st.session_state["md_data_report"] = datasets.validate(path)


def clear_report() -> None:
    """Another file is being chosen: the previous file's report (or error) goes."""
    st.session_state.pop("md_data_report", None)


def catalog_tab(project) -> None:
    entries = catalog.datasets()
    choice = st.selectbox(t("Dataset"), [d.id for d in entries], key="md_cat_data",
                          format_func=lambda i: (lambda d: f"{d.name} · {datasets.FORMATS[d.format]} · "
                                                           f"{d.records:,} · ~{d.size_mb:g} MB")(catalog.get_dataset(i)))
    entry = catalog.get_dataset(choice)
    st.caption(" · ".join(f"{SOURCE_LABELS[s]}: `{r}`" for s, r in entry.sources.items())
               + (f"  \n{t(entry.note)}" if entry.note else ""))
    dest = downloads.panel(project.download_cache, "dataset", entry.id, entry.sources, project.download_sources,
                           int(entry.size_mb * 1e6), project.hub_endpoints, entry.name, project.dataset_path or "")
    if dest is not None:
        files = datasets.data_files(dest)
        if not files:
            st.warning(t("No dataset file (.json, .jsonl, .parquet) in {path}.", path=str(dest)))
            return
        pick = st.selectbox(t("File"), [str(f) for f in files], key="md_cat_data_file",
                            format_func=lambda p: f"{Path(p).relative_to(dest)} · {human_bytes(Path(p).stat().st_size)}")
        if st.button(t("Check this file"), key="md_check_cat_data"):
            check(Path(pick))


def upload_tab(project) -> None:
    upload = st.file_uploader(t("Dataset file (.jsonl, .json or .parquet; up to 200 MB — larger: give its path)"),
                              type=["jsonl", "json", "parquet"], key="md_upload", on_change=clear_report)
    if upload is not None and st.button(t("Check the uploaded file"), key="use_upload"):
        name = Path(upload.name).name
        project.data_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=Path(name).suffix, dir=project.data_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(upload.getvalue())
        report = datasets.validate(tmp)
        if report.ok:
            target = _free_name(project.data_dir / name)
            os.replace(tmp, target)
            report = datasets.validate(target)
        else:
            Path(tmp).unlink(missing_ok=True)
            report.path = Path(name)
            for issue in report.errors + report.warnings:
                issue.file = name
        st.session_state["md_data_report"] = report


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    stem, suffix = path.name.split(".", 1) if "." in path.name else (path.name, "")
    for i in range(2, 1000):
        candidate = path.with_name(f"{stem}-{i}.{suffix}" if suffix else f"{stem}-{i}")
        if not candidate.exists():
            return candidate
    return path


def path_tab(project) -> None:
    raw = st.text_input(t("Dataset file on this machine"), value="", key="data_path",
                        placeholder="/data/my_dataset.jsonl", help=t("Large files: give the path, do not upload."))
    if st.button(t("Check this file"), key="check_data"):
        try:
            check(resolve_user_path(raw))
        except ValueError as e:
            clear_report()
            show_error(e)


def _general_choices(project) -> list[str]:
    found = [str(p) for p in sorted(project.data_dir.glob("*.jsonl"))]
    for d in hub.finished_downloads(project.download_cache, "dataset"):
        found += [str(p) for p in datasets.data_files(d)]
    return found


def build_tab(project) -> None:
    st.markdown(t("**Self-introduction dataset** — teach the model who it is (the tutorials' first exercise)."))
    lang = st.radio(t("Language of the defaults"), ["en", "zh"], horizontal=True, key="md_build_lang",
                    format_func={"en": "English", "zh": "中文"}.get)
    with st.form("md_self_intro"):
        name = st.text_input(t("Whose assistant is it? (name)"), value="", key="md_build_name")
        questions = st.text_area(t("Questions, one per line"), value="\n".join(databuild.DEFAULT_QUESTIONS[lang]),
                                 key=f"md_build_q_{lang}")
        answers = st.text_area(t("Answer variants, one per line ({name} is replaced by the name)"),
                               value="\n".join(databuild.DEFAULT_ANSWERS[lang]), key=f"md_build_a_{lang}")
        copies = st.number_input(t("Copies"), min_value=1, max_value=databuild.MAX_COPIES, value=500, step=100,
                                 key="md_build_copies")
        general = st.selectbox(t("General data to mix in (recommended)"), _general_choices(project), index=None,
                               key="md_build_general", placeholder=t("none"),
                               help=t("Thousands of identical answers make the model answer everything with its "
                                      "introduction (the tutorials' overfitting). Mixing in general data keeps it "
                                      "a useful assistant."))
        share = st.slider(t("Share of general data"), 0, 90, 50, step=5, format="%d%%", key="md_build_share")
        submitted = st.form_submit_button(t("Build the dataset"))
    if submitted:
        out = _free_name(project.data_dir / "self_intro.jsonl")
        try:
            res = databuild.build_self_intro(out, name, questions.splitlines(), answers.splitlines(), int(copies),
                                             general, share / 100 if general else 0.0)
        except databuild.BuildError as e:
            show_error(e)
        else:
            st.session_state["md_flash"] = t("Built {path}: {identity} self-introduction and {general} general "
                                              "records.", path=res.path.name, identity=res.identity, general=res.general)
            check(res.path)
            st.session_state["md_data_built"] = res.path  # its repeats are meant: not "duplicates"
    if not general:
        st.caption(t("Without general data the model tends to answer every question with its introduction."))

    st.divider()
    st.markdown(t("**Find and replace** across the dataset in use (every text value, like the tutorials' "
                  "change_script.py); writes a new file."))
    if not project.dataset_path:
        st.caption(t("Choose a dataset first."))
        return
    c1, c2 = st.columns(2)
    old = c1.text_input(t("Find"), key="md_find")
    new = c2.text_input(t("Replace with"), key="md_replace")
    if st.button(t("Replace into a new file"), key="md_do_replace"):
        src = Path(project.dataset_path)
        out = _free_name(project.data_dir / f"{src.name.split('.')[0]}.replaced.jsonl")
        try:
            res = databuild.find_replace(src, out, old, new)
        except databuild.BuildError as e:
            show_error(e)
            return
        if res.error is not None:
            show_error(res.error)
            return
        st.session_state["md_flash"] = t("{n} replacement(s) in {records} of {total} records → {path}",
                                          n=res.replacements, records=res.changed_records, total=res.records,
                                          path=out.name)
        check(out)


def warning_labels() -> dict[str, str]:
    return {"duplicate": t("Duplicate records"), "leading_assistant": t("Starts with an assistant message"),
            "no_assistant": t("No assistant message"), "system_middle": t("System message in the middle"),
            "empty_content": t("Empty content"), "trailing_user": t("Ends with an unanswered user message"),
            "consecutive_user": t("Two user messages in a row"),
            "consecutive_assistant": t("Two assistant messages in a row"), "nooutput": t("<nooutput> answers")}


def issue_text(issue) -> str:
    return t(issue.text, **issue.params)


def show_report(project):
    report = st.session_state.get("md_data_report")
    if report is None:
        return project
    if report.error_count:
        st.error(t("{file}: {n} problem(s) found; nothing was changed.", file=report.path.name, n=report.error_count),
                 icon=":material/error:")
        st.dataframe([{t("line"): i.line or "", t("field"): i.field, t("problem"): issue_text(i)}
                      for i in report.errors], hide_index=True, placeholder="—")
        if report.error_count > len(report.errors):
            st.caption(t("The first {shown} of {n} are listed.", shown=len(report.errors), n=report.error_count))
        return project
    st.success(t("{file}: {records} records ({label}), {trainable} with something to train, read in {seconds:.1f} s.",
                 file=report.path.name, records=report.records, label=report.label, trainable=report.trainable,
                 seconds=report.seconds), icon=":material/check_circle:")
    counts, warnings = report.warning_counts, report.warnings
    if st.session_state.get("md_data_built") == report.path and counts.get("duplicate"):
        st.info(t("{n} records repeat on purpose: the builder makes copies so that the model learns these answers.",
                  n=counts["duplicate"]), icon=":material/info:")
        counts = {code: n for code, n in counts.items() if code != "duplicate"}
        warnings = [w for w in warnings if w.code != "duplicate"]
    if warnings:
        with st.expander(t("{n} warning(s) that matter for training", n=sum(counts.values())),
                         icon=":material/warning:", expanded=True):
            labels = warning_labels()
            st.dataframe([{t("kind"): labels.get(code, code), t("records"): n}
                          for code, n in counts.items()], hide_index=True, placeholder="—")
            st.dataframe([{t("line"): i.line or "", t("field"): i.field, t("warning"): issue_text(i)}
                          for i in warnings], hide_index=True, placeholder="—")
    needs_conversion = report.format != "openai" or report.container == "parquet"
    if needs_conversion:
        st.info(t("XTuner Studio trains on OpenAI-messages JSONL: convert this {label} file (the original stays).",
                  label=report.label))
    c1, c2 = st.columns(2)
    drop_dups = c1.checkbox(t("Drop duplicate records"), value=False, key="md_drop_dups",
                            disabled=not report.warning_counts.get("duplicate"))
    drop_empty = c2.checkbox(t("Drop records with nothing to train"), value=False, key="md_drop_untrainable",
                             disabled=report.trainable == report.records)
    convert = needs_conversion or drop_dups or drop_empty
    if st.button(t("Convert and use") if convert else t("Use this dataset"), key="md_use_data", type="primary"):
        path = report.path
        if convert:
            out = _free_name(project.data_dir / datasets.converted_name(report.path))
            with st.spinner(t("Converting {name}…", name=report.path.name)):
                res = datasets.convert(report.path, out, drop_duplicates=drop_dups, drop_untrainable=drop_empty)
            if res.out_path is None:
                st.session_state["md_data_report"] = res.report
                st.rerun()
            path = res.out_path
            st.session_state["md_flash"] = t("Converted: {written} records written to {path} ({dups} duplicates "
                                              "and {empty} empty records dropped).", written=res.written,
                                              path=path.name, dups=res.dropped_duplicates,
                                              empty=res.dropped_untrainable)
        project = session.save_project(project.model_copy(update={"dataset_path": str(path)}))
        st.session_state.pop("md_data_report", None)
        st.rerun()
    return project


def section(project):
    st.subheader(t("Dataset"))
    if project.dataset_path:
        st.markdown(t("**In use:** `{path}`", path=project.dataset_path))
    st.caption(t(FORMAT_HELP))
    tabs = st.tabs([t("Catalog"), t("Upload"), t("File on this machine"), t("Build")])
    with tabs[0]:
        catalog_tab(project)
    with tabs[1]:
        upload_tab(project)
    with tabs[2]:
        path_tab(project)
    with tabs[3]:
        build_tab(project)
    return show_report(project)
