"""Does a prompt template give the model the same tokens as the model's own chat template?

A probe conversation is rendered both ways and compared token id by token id: XTuner's way (its
``template_map_fn`` + ``encode_fn``: each piece tokenized on its own, BOS/EOS ids added per the tokenizer
class) and the tokenizer's ``apply_chat_template``. Two differences are expected and only noted: a BOS
that XTuner puts before a sample when the chat template has none, and an EOS that a chat template writes
after a finished conversation. Anything else is a mismatch, reported with the differing text.
Takes a loaded tokenizer (the caller imports transformers); used before training and by the smoke run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.data import chatrender
from core.data.templates import template_dict

PROBE_SYSTEM = "You are a helpful assistant."
PROBE = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am your assistant."}]
M_MISMATCH = ("The prompt template {template} gives this model different tokens than its own chat template "
              "({file}): {diff}. Choose the template that matches, or fix the tokenizer's chat_template.")
M_NO_CHAT_TEMPLATE = ("{file} has no chat_template, so the {template} template cannot be checked against it. "
                      "Add the model's chat template to tokenizer_config.json, or use the instruct model's tokenizer.")


@dataclass
class ProbeResult:
    template: str
    ok: bool
    xtuner_text: str = ""
    model_text: str = ""
    differences: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""

    def message(self, file: str = "tokenizer_config.json") -> str:
        if self.ok:
            return ""
        if self.error:
            return self.error
        diff = "; ".join(f"{op} {a!r} → {b!r}" for op, a, b in self.differences[:3])
        return M_MISMATCH.format(template=self.template, file=file, diff=diff)


def bos_eos_ids(tokenizer) -> tuple[list[int], list[int]]:
    """XTuner 0.2.0's get_bos_eos_token_ids: no BOS for Qwen tokenizers."""
    if type(tokenizer).__name__ in chatrender.NO_BOS_TOKENIZERS:
        return [], [tokenizer.eos_token_id]
    return [tokenizer.bos_token_id], [tokenizer.eos_token_id]


def xtuner_ids(tokenizer, template: str, messages: list[dict]) -> list[int]:
    """The token ids XTuner trains on for ``messages`` with ``template``."""
    t = template_dict(template)
    bos, eos = bos_eos_ids(tokenizer)
    enc = lambda text: tokenizer.encode(text, add_special_tokens=False) if text else []  # noqa: E731
    ids: list[int] = []
    next_bos = True
    for i, (system, inp, output, _loss) in enumerate(chatrender.messages_to_turns(messages)):
        prompt = t["INSTRUCTION"].format(input=inp or "", round=i + 1)
        if system:
            prompt = t["SYSTEM"].format(system=system) + prompt
        ids += (bos if next_bos else []) + enc(prompt) + enc(output + (t.get("SUFFIX") or ""))
        next_bos = not t.get("SUFFIX_AS_EOS", False)
        ids += eos if next_bos else []
        ids += enc(t.get("SEP") or "")
    return ids


def probe_messages(template: str, with_system: bool = True) -> list[dict]:
    system = [{"role": "system", "content": PROBE_SYSTEM}] if with_system and "SYSTEM" in template_dict(template) else []
    return system + PROBE


def check_template(tokenizer, template: str) -> ProbeResult:
    """Render the probe both ways and compare token ids (see the module docstring)."""
    result = ProbeResult(template=template, ok=False)
    if not getattr(tokenizer, "chat_template", None):
        result.error = M_NO_CHAT_TEMPLATE.format(file="tokenizer_config.json", template=template)
        return result
    messages = probe_messages(template)
    try:
        model_ids = tokenizer.apply_chat_template(messages, tokenize=True, enable_thinking=False)
    except Exception:  # noqa: BLE001 - a chat template that refuses a system turn (Gemma 2)
        messages = probe_messages(template, with_system=False)
        model_ids = tokenizer.apply_chat_template(messages, tokenize=True, enable_thinking=False)
    if isinstance(model_ids, dict):  # BatchEncoding in newer transformers
        model_ids = model_ids["input_ids"]
    model_ids = list(model_ids)
    ours = xtuner_ids(tokenizer, template, messages)
    bos, eos = bos_eos_ids(tokenizer)
    if bos and ours[:1] == bos and model_ids[:1] != bos:
        ours = ours[1:]
        result.notes.append("XTuner puts the BOS token before each sample; the chat template does not.")
    if eos and model_ids[-1:] == eos and model_ids[:-1] == ours:
        model_ids = model_ids[:-1]
        result.notes.append("The chat template ends a finished conversation with the EOS token; training does not.")
    result.xtuner_text = tokenizer.decode(ours)
    result.model_text = tokenizer.decode(model_ids)
    result.ok = ours == model_ids
    if not result.ok:
        result.differences = chatrender.differences(result.xtuner_text, result.model_text) or [
            ("tokens", str(ours), str(model_ids))]
    return result
