"""Ollama's ``Modelfile`` beside a GGUF, and the commands that use it.

TEMPLATE is Ollama's Go-template language, written from the model's XTuner prompt template — the one
definition training, evaluation and chat use (``core.data.templates``), which Model & Data checks
against the tokenizer's chat template token by token — so Ollama formats a conversation exactly as
the model was trained (a test renders both for a probe conversation). Stop words become
``PARAMETER stop``; the project's system prompt becomes SYSTEM.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Optional

from core.errors import UserError
from core.fsutil import atomic_write_text

MODELFILE = "Modelfile"
E_TRIPLE_QUOTES = 'The system prompt contains """, which an Ollama Modelfile cannot hold.'
MESSAGES = [E_TRIPLE_QUOTES]


def _literal(text: str) -> str:
    """Template text as Go-template literal text (``{{`` itself written as an action)."""
    return text.replace("{{", '{{"{{"}}')


def go_template(template: dict) -> str:
    """An XTuner prompt template (SYSTEM / INSTRUCTION / SUFFIX / SEP) as an Ollama TEMPLATE: the same
    text ``core.data.templates.format_prompt`` builds, for Ollama's ``.System`` and ``.Messages``."""
    def fill(part: str, **values: str) -> str:
        marks = {k: f"\x00{k}\x00" for k in values}
        text = _literal(part.format(round=1, bot_name="BOT", **marks))
        for k, v in values.items():
            text = text.replace(marks[k], v)
        return text

    system = fill(template["SYSTEM"], system="{{ .System }}") if "SYSTEM" in template else ""
    user = fill(template["INSTRUCTION"], input="{{ .Content }}")
    after_answer = _literal(template.get("SUFFIX", "") + template.get("SEP", ""))
    return (("{{ if .System }}" + system + "{{ end }}") if system else "") + \
        '{{ range .Messages }}{{ if eq .Role "user" }}' + user + \
        '{{ else if eq .Role "assistant" }}{{ .Content }}' + after_answer + "{{ end }}{{ end }}"


def modelfile_text(gguf_name: str, template: Optional[dict], system: str = "") -> str:
    """The Modelfile: FROM the GGUF beside it, TEMPLATE, PARAMETER stop …, SYSTEM."""
    if '"""' in system:
        raise UserError(E_TRIPLE_QUOTES)
    lines = [f"FROM ./{gguf_name}"]
    if template:
        lines.append(f'TEMPLATE """{go_template(template)}"""')
        for word in template.get("STOP_WORDS", []):
            lines.append(f"PARAMETER stop {json.dumps(word, ensure_ascii=False)}")
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def parse_modelfile(text: str) -> dict:
    """A Modelfile's instructions: {"FROM": str, "TEMPLATE": str, "SYSTEM": str, "stop": [str, ...]}."""
    out: dict = {"stop": []}
    i = 0
    while i < len(text):
        line_end = text.find("\n", i)
        line_end = len(text) if line_end < 0 else line_end
        line = text[i:line_end]
        if not line.strip():
            i = line_end + 1
            continue
        word, _, rest = line.partition(" ")
        if rest.startswith('"""'):
            end = text.index('"""', i + len(word) + 4)
            value = text[i + len(word) + 4:end]
            i = text.find("\n", end) + 1 or len(text)
        else:
            value, i = rest, line_end + 1
        if word == "PARAMETER":
            key, _, raw = value.partition(" ")
            if key == "stop":
                out["stop"].append(json.loads(raw))
        else:
            out[word] = value
    return out


def ollama_commands(job_dir: Path, name: str) -> list[str]:
    """The exact lines to import the GGUF into Ollama and chat with it."""
    return [f"cd {shlex.quote(str(job_dir))}", f"ollama create {shlex.quote(name)} -f {MODELFILE}",
            f"ollama run {shlex.quote(name)}"]


def ollama_name(text: str) -> str:
    """A valid Ollama model name from a project/run name (lowercase letters, digits, - _ .)."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.lower()).strip("-.")
    return name or "model"


def write_modelfile(gguf: Path, model_dir: Path, system: str = "", name: str = "model",
                    template_name: Optional[str] = None) -> Path:
    """Write the Modelfile beside ``gguf`` (its template: ``template_name`` or the one detected)."""
    from core.data.templates import detect_template, template_dict

    template_name = template_name or detect_template(model_dir)
    template = template_dict(template_name) if template_name else None
    path = Path(gguf).parent / MODELFILE
    atomic_write_text(path, modelfile_text(Path(gguf).name, template, system))
    return path
