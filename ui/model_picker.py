"""Model & Data, the model half: catalog downloads, your own model checked and cross-checked, the template."""
from __future__ import annotations

import streamlit as st

from core.models import catalog, folder as models, method_fit
from core.models.catalog import SOURCE_LABELS, SOURCES
from core.fsutil import human_bytes
from core.paths import resolve_user_path
from core.data.templates import template_names
from ui import downloads, session
from ui.errors import show_error
from ui.i18n import t


def download_settings(project):
    """Source order and endpoints (mirrors matter in China); saved in the project."""
    with st.expander(t("Download settings: source order and mirrors"), icon=":material/settings:"):
        order = st.multiselect(
            t("Sources, in the order to try"), list(SOURCES), default=[s for s in project.download_sources if s in SOURCES],
            format_func=SOURCE_LABELS.get, key="md_sources", placeholder=t("Choose sources"),
            help=t("The first source that has the entry is used; if it fails, the next one is tried."))
        hf = st.text_input(t("Hugging Face endpoint (a mirror such as https://hf-mirror.com)"),
                           value=project.hub_endpoints.get("huggingface", ""), key="md_hf_endpoint",
                           placeholder="https://huggingface.co")
        ms = st.text_input(t("ModelScope endpoint"), value=project.hub_endpoints.get("modelscope", ""),
                           key="md_ms_endpoint", placeholder="https://www.modelscope.cn")
        st.caption(t("Gated or private models need a token in the app's environment: HF_TOKEN for Hugging Face, "
                     "MODELSCOPE_API_TOKEN for ModelScope. OpenXLab runs in its own environment "
                     "(scripts/ensure_env.sh --openxlab) and shows progress against the catalog size only."))
        endpoints = {k: v.strip() for k, v in (("huggingface", hf), ("modelscope", ms)) if v.strip()}
        if order != project.download_sources or endpoints != project.hub_endpoints:
            if st.button(t("Save the download settings"), key="md_save_dl"):
                bad = [u for u in endpoints.values() if not u.startswith(("http://", "https://"))]
                if bad:
                    st.error(t("An endpoint must start with http:// or https://: {url}", url=bad[0]))
                else:
                    project = session.save_project(project.model_copy(update={"download_sources": order,
                                                                              "hub_endpoints": endpoints}))
                    st.rerun()
    return project


def _model_label(m) -> str:
    extra = " · " + t("gated") if m.gated else ""
    return f"{m.name} · {m.params_b:g}B · {m.template} · ~{m.size_gb:g} GB{extra}"


def fits_caption(entry) -> str:
    """'QLoRA ≥ 8 GB · LoRA ≥ 12 GB · full ≥ 16 GB' from the memory estimate ("" without the entry's sizes)."""
    names = {"qlora": "QLoRA", "lora": "LoRA", "full": t("full fine-tuning")}
    parts = [t("{method} ≥ {gb} GB", method=names[m], gb=gb) if gb else
             t("{method}: more than one GPU", method=names[m]) for m, gb in method_fit.method_fits(entry).items()]
    return t("GPU memory (estimate, one GPU, batch 1 × 2048 tokens): {fits}", fits=" · ".join(parts)) if parts else ""


def catalog_tab(project):
    entries = catalog.models()
    ids = [m.id for m in entries]
    choice = st.selectbox(t("Model"), ids, format_func=lambda i: _model_label(catalog.get_model(i)), key="md_cat_model",
                          help=t("Current chat models of the families XTuner has prompt templates for."))
    entry = catalog.get_model(choice)
    links = " · ".join(f"{SOURCE_LABELS[s]}: `{r}`" for s, r in entry.sources.items())
    st.caption(links + (f"  \n{t(entry.note)}" if entry.note else ""))
    if fits := fits_caption(entry):
        st.caption(fits)
    if entry.gated:
        st.caption(t(":orange[Gated]: accept the licence on the model's page and start the app with your token "
                     "(HF_TOKEN) in the environment."))
    dest = downloads.panel(project.download_cache, "model", entry.id, entry.sources, project.download_sources,
                           int(entry.size_gb * 1e9), project.hub_endpoints, entry.name, project.model_path or "")
    if dest is not None:
        if st.button(t("Check and use this model"), key="md_use_catalog_model", type="primary"):
            st.session_state["md_model_report"] = models.inspect_model(dest)
            st.session_state["md_model_catalog_template"] = entry.template
    return project


def own_model_tab(project):
    path = st.text_input(t("Model folder on this machine"), value=project.model_path or "", key="md_model_path",
                         placeholder="/data/models/internlm2_5-7b-chat",
                         help=t("A Hugging Face model folder: config.json, tokenizer, weights."))
    if st.button(t("Check this model"), key="check_model"):
        try:
            st.session_state["md_model_report"] = models.inspect_model(resolve_user_path(path))
            st.session_state.pop("md_model_catalog_template", None)
        except ValueError as e:
            st.session_state.pop("md_model_report", None)  # not the previous folder's report beside this error
            show_error(e)


def show_model_report(project):
    report = st.session_state.get("md_model_report")
    if report is None:
        return project
    for e in report.errors:
        st.error(t(e.text, **e.params))
    if report.errors:
        st.caption(t("Nothing was changed in the project."))
        return project
    cols = st.columns(5)
    cols[0].metric(t("Architecture"), report.architecture or "—")
    cols[1].metric(t("Parameters"), f"{report.params / 1e9:.2f} B" if report.params and report.params > 5e7
                   else (f"{report.params:,}" if report.params else "—"),
                   help=t("From the safetensors headers (no weights loaded)") if report.params_source ==
                   "safetensors headers" else t("Estimated from the weight files' size"))
    cols[2].metric(t("Weights dtype"), report.dtype or "—")
    cols[3].metric(t("Size on disk"), human_bytes(report.size_bytes))
    cols[4].metric(t("Context"), f"{report.context:,}" if report.context else "—")
    for w in report.warnings:
        st.warning(t(w.text, **w.params))
    template = st.session_state.get("md_model_catalog_template") or report.template
    if template:
        src = {"model type": t("from the model type"), "chat template": t("by rendering its chat template")}.get(
            report.template_source or "", t("from the catalog"))
        st.markdown(t("XTuner prompt template: **{template}** ({source})", template=template, source=src))
    if report.check is not None:
        with st.expander(t("Cross-check: a sample conversation rendered both ways ({percent}% alike)",
                           percent=round(report.check.similarity * 100)), icon=":material/compare:"):
            c1, c2 = st.columns(2)
            c1.caption(t("XTuner template {name} (what training sees)", name=report.check.template))
            c1.code(report.check.xtuner_text, language=None, wrap_lines=True)
            c2.caption(t("The model's own chat_template"))
            c2.code(report.check.model_text, language=None, wrap_lines=True)
            if report.check.differences:
                st.dataframe([{t("change"): op, t("XTuner"): a, t("model's template"): b}
                              for op, a, b in report.check.differences[:50]], hide_index=True, placeholder="—")
            else:
                st.success(t("Identical: the template matches the model."))
            st.caption(t("Closest XTuner templates: {list}",
                         list=", ".join(f"{n} ({s:.0%})" for n, s in report.check.candidates)))
    trust = project.trust_remote_code
    if report.needs_remote_code:
        trust = st.checkbox(t("I trust this model's code and allow it to run (trust_remote_code)"),
                            value=project.trust_remote_code and project.model_path == str(report.path),
                            key="md_trust")
    if st.button(t("Use this model"), key="md_use_model", type="primary",
                 disabled=report.needs_remote_code and not trust):
        project = session.save_project(project.model_copy(update={
            "model_path": str(report.path), "prompt_template": template or project.prompt_template,
            "trust_remote_code": bool(report.needs_remote_code and trust)}))
        st.session_state.pop("md_model_report", None)
        st.session_state["md_flash"] = t("Model set: {path}", path=str(report.path))
        st.rerun()
    if report.needs_remote_code and not trust:
        st.caption(t("This model runs its own code: tick the box above to use it."))
    return project


def template_select(project):
    names = template_names()
    current = project.prompt_template if project.prompt_template in names else None
    template = st.selectbox(t("Prompt template"), names, index=names.index(current) if current else None,
                            placeholder=t("Choose the model's chat template"),
                            help=t("How a conversation is turned into text for this model family "
                                   "(XTuner's PROMPT_TEMPLATE)."))
    if template and template != project.prompt_template:
        project = session.save_project(project.model_copy(update={"prompt_template": template}))
    return project


def section(project):
    st.subheader(t("Base model"))
    if project.model_path:
        st.markdown(t("**In use:** `{path}`", path=project.model_path))
    project = download_settings(project)
    tab_cat, tab_own = st.tabs([t("Catalog"), t("Your own model")])
    with tab_cat:
        project = catalog_tab(project)
    with tab_own:
        own_model_tab(project)
    project = show_model_report(project)
    return template_select(project)
