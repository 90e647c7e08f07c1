"""The parts of a generated config that differ for preference tuning (DPO, ORPO), after XTuner 0.2.0's
``xtuner/configs/dpo`` and ``orpo`` configs (non-varlen form).

The policy is the project's model with its method (LoRA/QLoRA adapter, or every weight). DPO's reference
model is handled as XTuner's ``DPO`` does: with an adapter, the same base with the adapter switched off
(``disable_adapter``, no second copy in memory); a full fine-tune gets a frozen copy. ORPO needs no
reference model. The data is XTuner's preference JSONL (``core.data.preference``), rendered with the
tokenizer's own chat template by ``xtuner.dataset.preference_dataset``.
"""
from __future__ import annotations

import json
from pathlib import Path

MODEL_CLASS = {"sft": "SupervisedFinetune", "dpo": "DPO", "orpo": "ORPO"}

E_NO_CHAT_TEMPLATE = ("DPO and ORPO render the pairs with the tokenizer's own chat template, and the model in {path} "
                      "has none: choose a chat model, or supervised fine-tuning.")
MESSAGES = [E_NO_CHAT_TEMPLATE]


def is_preference(objective: str) -> bool:
    return objective != "sft"


def has_chat_template(model_path: str) -> bool:
    """Whether a model folder's tokenizer has a chat template (tokenizer_config.json or chat_template.jinja)."""
    folder = Path(model_path)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def renders_pairs(objective: str, model_path: str) -> bool:
    """False for a preference run on a model folder whose tokenizer cannot render the pairs (E_NO_CHAT_TEMPLATE)."""
    return not (is_preference(objective) and Path(model_path).is_dir() and not has_chat_template(model_path))


def imports(objective: str) -> list[str]:
    if not is_preference(objective):
        return []
    return ["from xtuner.dataset.collate_fns.preference_collate_fn import preference_collate_fn",
            "from xtuner.dataset.preference_dataset import build_preference_dataset, load_jsonl_dataset",
            f"from xtuner.model.{objective} import {MODEL_CLASS[objective]}"]


def model_keywords(objective: str) -> list[str]:
    """Keywords of ``model = dict(type=DPO|ORPO, …)`` beside ``llm`` and ``lora``."""
    if objective == "dpo":
        return ["    # reference model: none given, so XTuner's DPO uses the base with the adapter switched off",
                "    # (LoRA/QLoRA), or a frozen copy of the model (full)",
                "    ref_llm=None,",
                "    loss_type=dpo_loss_type,",
                "    beta=loss_beta,",
                "    label_smoothing=label_smoothing,"]
    if objective == "orpo":
        return ["    beta=loss_beta,"]
    return []


def dataset_lines(num_proc: int) -> list[str]:
    """PART 3 for preference pairs: XTuner's preference dataset and collate function."""
    return [
        "train_dataset = dict(",
        "    type=build_preference_dataset,",
        "    dataset=dict(type=load_jsonl_dataset, data_files=[data_path]),",
        "    tokenizer=tokenizer,",
        "    max_length=max_length,",
        "    dataset_map_fn=None,",
        "    is_dpo=True,",
        "    is_reward=False,",
        "    reward_token_id=-1,",
        f"    num_proc={num_proc!r},",
        "    use_varlen_attn=use_varlen_attn,",
        "    max_packed_length=max_length * 2,",
        "    shuffle_before_pack=True)",
        "",
        "train_dataloader = dict(",
        "    batch_size=batch_size,",
        "    num_workers=dataloader_num_workers,",
        "    dataset=train_dataset,",
        "    sampler=dict(type=DefaultSampler, shuffle=True),",
        "    collate_fn=dict(type=preference_collate_fn, use_varlen_attn=use_varlen_attn))",
    ]
