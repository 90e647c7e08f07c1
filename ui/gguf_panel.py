"""Convert & Chat: export a merged or full fine-tuned output to GGUF (llama.cpp, Ollama, LM Studio) and
serve it through llama.cpp's OpenAI-compatible server."""
from __future__ import annotations

import streamlit as st

from core import jobs
from core.deploy import gguf, gguf_modelfile, serve
from core.errors import UserError
from core.fsutil import human_bytes
from ui import job_status
from ui.errors import show_error
from ui.i18n import t

QUANT_HELP = {
    "F16": "16-bit floats: the model unchanged, the largest file.",
    "BF16": "bfloat16: like F16, with the range of float32 (for bf16-trained models).",
    "Q8_0": "8-bit: nearly lossless, about half of F16.",
    "Q6_K": "6-bit K-quant: very close to Q8_0, smaller.",
    "Q5_K_M": "5-bit K-quant: a good balance.",
    "Q4_K_M": "4-bit K-quant: the usual choice for laptops; some quality lost.",
}


def render(project, outputs: list, kind_label) -> None:
    """The GGUF export and serve sections for the project's whole-model outputs."""
    st.subheader(t("Export to GGUF (llama.cpp, Ollama)"))
    missing = gguf.converter_missing()
    if missing:
        show_error(UserError(gguf.E_NO_CONVERTER, missing=missing, line=gguf.INSTALL_LINE), level="warning")
        return
    models = [o for o in outputs if o.is_model]
    if not models:
        st.caption(t("Convert a checkpoint first: a merged or full fine-tuned model can be exported to GGUF."))
        return
    g1, g2 = st.columns([3, 2])
    target = g1.selectbox(t("Model"), models, key="gguf_output",
                          format_func=lambda o: f"{o.run.id} · iter {o.iteration} · {kind_label(o.kind)}")
    quant = g2.selectbox(t("Type"), gguf.QUANTS, index=gguf.QUANTS.index("Q8_0"), key="gguf_quant",
                         format_func=lambda q: f"{q} · {t(QUANT_HELP[q])}")
    job_dir = gguf.gguf_job_dir(target.path, quant)
    try:
        estimate = gguf.estimate_bytes(target.path, quant)
    except (OSError, ValueError):
        estimate = None
    if estimate:
        st.caption(t("Estimated size: {size}", size=human_bytes(estimate)))
    job = jobs.read_job(job_dir)
    if st.button(t("Export {quant}", quant=quant), type="primary", icon=":material/file_export:", key="gguf_export",
                 disabled=job is not None and job.active):
        try:
            gguf.start_gguf_export(target.path, quant, system=project.system_prompt,
                                   name=gguf_modelfile.ollama_name(project.name), template=project.prompt_template)
        except (UserError, OSError) as e:
            show_error(e)
        else:
            st.rerun()

    def done(j) -> None:
        path = gguf.finished_gguf(job_dir)
        if path is None:
            return
        st.caption(t("GGUF: {path} ({size})", path=str(path), size=human_bytes(path.stat().st_size)))
        st.markdown(t("**Ollama** — the Modelfile is beside the file; import and chat with:"))
        st.code("\n".join(gguf_modelfile.ollama_commands(job_dir, gguf_modelfile.ollama_name(project.name))),
                language="bash")
        with st.expander(t("Modelfile")):
            st.code((job_dir / gguf_modelfile.MODELFILE).read_text(encoding="utf-8"), language="text")

    job_status.panel(job_dir, t("GGUF export"), key=f"gguf_{job_dir}", period=1.5, after=done)
    path = gguf.finished_gguf(job_dir)
    if path is not None:
        serve_section(path, gguf_modelfile.ollama_name(project.name))


def serve_section(path, alias: str) -> None:
    """Start / stop llama.cpp's OpenAI-compatible server on ``path``; the client lines when it answers."""
    st.subheader(t("Serve (OpenAI-compatible API)"))
    sdir = serve.serve_dir(path)
    job = jobs.read_job(sdir)
    active = job is not None and job.active
    s1, s2 = st.columns([2, 3])
    port = s1.number_input(t("Port (0: a free one)"), min_value=0, max_value=65535, value=0, step=1,
                           key=f"serve_port_{sdir}", disabled=active)
    s2.caption(t("llama.cpp's server on 127.0.0.1 only; it keeps running when the app stops, until you stop it."))
    if st.button(t("Start the server"), icon=":material/play_arrow:", key=f"serve_start_{sdir}", disabled=active):
        try:
            serve.start_serve(path, alias=alias, port=int(port) or None)
        except (UserError, OSError) as e:
            show_error(e)
        else:
            st.rerun()

    def lines(j) -> None:
        if j.state == "running" and serve.is_ready(j):
            st.success(t("Answering on {url}", url=serve.base_url(j)))
            curl, python = serve.client_lines(j)
            st.code(curl, language="bash")
            st.code(python, language="python")
        elif j.active:
            st.caption(t("Starting: loading the model…"))

    job_status.panel(sdir, t("Server"), key=f"serve_{sdir}", period=2.0,
                     running=t("Server running on port {port}", port=job.meta.get("port")) if active else None,
                     after=lines)
