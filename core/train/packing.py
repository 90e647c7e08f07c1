"""Packing without attention across samples: which attention path a run's packed sequences take.

With ``pack_to_max_length`` XTuner concatenates short samples into ``max_length`` sequences. Given
one causal mask over the whole sequence, every sample would attend to the ones before it (attention
the data never had). The samples stay separate in one of two ways:

- **XTuner's varlen path** where its backend, the ``flash_attn`` package, is installed on the GPU
  machine and the batch is 1 sequence (XTuner's own condition): ``use_varlen_attn = True``, its
  collate function and ``VarlenAttnArgsToMessageHubHook``; its dispatched attention calls flash-attn's
  variable-length kernel with the samples' bounds.
- **otherwise** (no flash_attn, the CPU, a batch above 1): XTuner's packer still writes per-sample
  position ids (they restart at 0 for each sample), and ``packed_collate_fn`` passes them without an
  attention mask. transformers (≥ 4.53, ``masking_utils.find_packed_sequence_indices``) then builds a
  block-diagonal causal mask from them for SDPA / eager attention: each token sees only its own sample.

Models that bring their own code (``trust_remote_code``: InternLM2/3) build their own mask and ignore
per-sample positions; without flash_attn their packed samples still attend across (a notice says so).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

F_REMOTE_CODE = ("Packed samples attend to one another: this model's own code has no per-sample mask, and "
                 "XTuner's variable-length attention needs the flash_attn package.")
MESSAGES = [F_REMOTE_CODE]

IGNORE_INDEX = -100  # XTuner's (xtuner.utils.IGNORE_INDEX)


@dataclass(frozen=True)
class AttentionPlan:
    xtuner_varlen: bool  # XTuner's varlen attention (model + hook); needs flash_attn and batch 1
    packer_positions: bool  # the packer writes per-sample position ids and sample bounds
    collate: str  # "xtuner" (its default_collate_fn) or "packed" (packed_collate_fn)
    comment: str  # for the generated config
    notices: list = field(default_factory=list)  # [(template, params)] printed at the start of training


def flash_attn_installed() -> bool:
    """Whether the flash_attn package is installed here (found, not imported)."""
    return importlib.util.find_spec("flash_attn") is not None


def attention_plan(spec) -> AttentionPlan:
    """How a ``TrainSpec``'s packed sequences keep their samples apart (module docstring)."""
    hp = spec.hyperparams
    if not hp.pack_to_max_length:
        return AttentionPlan(False, False, "xtuner", "no packing: one sample per sequence")
    if spec.device == "cuda" and spec.flash_attn and hp.batch_size == 1:
        return AttentionPlan(True, True, "xtuner", "packed samples kept apart by flash-attn's varlen kernel")
    if spec.trust_remote_code:
        return AttentionPlan(False, False, "xtuner", "packed samples attend across (the model's own code)",
                             [(F_REMOTE_CODE, {})])
    return AttentionPlan(False, True, "packed", "packed samples kept apart by a per-sample mask (position ids)")


def packed_collate_fn(instances, pad_index: int = 0):
    """Packed sequences → XTuner's batch, per-sample position ids and no attention mask (so that
    transformers masks each sample separately); sequences shorter than the longest are padded with
    ignored labels, their padding as one-token samples of their own."""
    import torch

    longest = max(len(x["input_ids"]) for x in instances)
    input_ids, labels, positions = [], [], []
    for x in instances:
        pad = longest - len(x["input_ids"])
        input_ids.append(list(x["input_ids"]) + [pad_index] * pad)
        labels.append(list(x["labels"]) + [IGNORE_INDEX] * pad)
        positions.append(list(x["position_ids"]) + [0] * pad)
    data = {"input_ids": torch.tensor(input_ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long),
            "position_ids": torch.tensor(positions, dtype=torch.long)}
    return {"data": data, "data_samples": None}
