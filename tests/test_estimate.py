"""Memory estimate: sizes from config.json / safetensors headers (no weights loaded), parts, ZeRO splits, fit."""
import json

import pytest

from core.models.estimate import (GIB, EstimateError, estimate, fit_check, lora_params, model_shape,
                           safetensors_header)
from core.project import Hyperparams
from core.machine.system import GPU

QWEN25_7B = dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)
LLAMA2_7B = dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)


def model_dir(tmp_path, cfg):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


@pytest.mark.parametrize("cfg,params", [(QWEN25_7B, 7.6156e9), (LLAMA2_7B, 6.7384e9)])
def test_parameter_count_from_config_matches_the_published_sizes(tmp_path, cfg, params):
    shape = model_shape(model_dir(tmp_path, cfg))
    assert shape.total_params == pytest.approx(params, rel=1e-3)
    assert shape.source == "config.json"


def test_safetensors_headers_give_the_exact_count_without_loading(demo_workspace):
    import torch
    from transformers import AutoModelForCausalLM

    path = demo_workspace / "projects" / "demo" / "model"
    shape = model_shape(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert shape.source == "safetensors"
    assert shape.total_params == sum(p.numel() for p in model.parameters())
    linear = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    assert shape.linear_params == sum(m.weight.numel() for m in linear)
    # LoRA parameters as peft creates them on every linear layer (XTuner's default targets)
    from peft import LoraConfig, get_peft_model

    names = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)} - {"lm_head"})
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=names))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert lora_params(shape, 8) == trainable
    assert lora_params(shape, 8, ["q_proj", "v_proj"]) < trainable
    assert "q_proj" in safetensors_header(path / "model.safetensors").__repr__()


def test_parts_follow_the_method_and_the_zero_stage(tmp_path):
    shape = model_shape(model_dir(tmp_path, QWEN25_7B))
    hp = Hyperparams()  # XTuner's QLoRA defaults: batch 1, max_length 2048, r 64
    q = estimate(shape, "qlora", hp)
    lo = estimate(shape, "lora", hp)
    full = estimate(shape, "full", hp)
    assert q.per_gpu < lo.per_gpu < full.per_gpu
    assert full.parts["optimizer state"] == 2 * full.parts["weights"]  # AdamW: two fp32 moments
    assert lo.trainable_params == q.trainable_params == lora_params(shape, 64)
    z1 = estimate(shape, "full", hp, num_gpus=8, deepspeed="deepspeed_zero1")
    z2 = estimate(shape, "full", hp, num_gpus=8, deepspeed="deepspeed_zero2")
    z3 = estimate(shape, "full", hp, num_gpus=8, deepspeed="deepspeed_zero3")
    assert z1.parts["optimizer state"] == pytest.approx(full.total_params * 12 / 8, rel=1e-6)
    assert z2.parts["gradients"] < z1.parts["gradients"] and z3.parts["weights"] < z2.parts["weights"]
    assert z3.per_gpu < z2.per_gpu < z1.per_gpu < full.per_gpu
    off = estimate(shape, "full", hp, num_gpus=8, deepspeed="deepspeed_zero3_offload")
    assert off.parts["optimizer state"] == 0 and off.parts["weights"] == 0 and off.cpu_offload > 0
    # activations grow with batch × length
    big = estimate(shape, "qlora", Hyperparams(batch_size=2, max_length=4096))
    assert big.parts["logits and loss"] == 4 * q.parts["logits and loss"]
    assert 10 * GIB < q.per_gpu < 20 * GIB


def test_fit_check_against_detected_gpus(tmp_path):
    est = estimate(model_shape(model_dir(tmp_path, QWEN25_7B)), "qlora", Hyperparams())
    small = GPU(0, "small", 8 * GIB, 0, None, "x")
    big = GPU(1, "big", 80 * GIB, 0, None, "x")
    assert fit_check(est, [], 1).status == "no_gpu"
    assert fit_check(est, [small], 1).status == "too_big"
    assert fit_check(est, [big], 1).status == "fits"
    assert fit_check(est, [big, small], 2).status == "too_big"  # the smallest GPU used decides
    tight = GPU(2, "tight", int(est.with_overhead / 0.95), 0, None, "x")
    assert fit_check(est, [tight], 1).status == "tight"


def test_missing_or_bad_model_files_get_clear_errors(tmp_path):
    with pytest.raises(EstimateError, match="no config.json"):
        model_shape(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(EstimateError, match="not valid JSON"):
        model_shape(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EstimateError, match="hidden_size"):
        model_shape(tmp_path)
    with pytest.raises(EstimateError, match="Unknown DeepSpeed"):
        estimate(model_shape(model_dir(tmp_path, LLAMA2_7B)), "full", Hyperparams(), deepspeed="zero9")
