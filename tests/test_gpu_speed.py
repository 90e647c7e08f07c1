"""Issue 15, CPU side: precision by GPU capability, packing without attention across samples, fused
kernels with their fallbacks, and the throughput benchmark's own arithmetic."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.project import Hyperparams
from core.train import fallbacks, kernels, packing, precision
from core.train.configgen import TrainSpec, literal_assignments, render_config

REPO = Path(__file__).resolve().parent.parent


def spec(**kw):
    hp = kw.pop("hp", {})
    base = dict(method="lora", model_path="/models/m", prompt_template="qwen_chat", dataset_path="/data/d.jsonl",
                device="cuda", hyperparams=Hyperparams(**hp))
    base.update(kw)
    return TrainSpec(**base)


def optim(text: str) -> str:
    return text.split("optim_wrapper = dict(")[1].split("\n\n")[0]


# --- precision ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_bf16_gpu_trains_bf16_without_loss_scaling(method):
    text = render_config(spec(method=method, gpu_capability=(9, 0)))
    assert "torch_dtype=torch.bfloat16," in text and "torch.float16" not in text
    assert "loss_scale=dict(enabled=False)" in optim(text) and "dtype='bfloat16'" in optim(text)
    assert "'dynamic'" not in text
    if method == "qlora":
        assert "bnb_4bit_compute_dtype=torch.bfloat16," in text
    assert literal_assignments(text)["studio_fallbacks"] == []
    assert "# Precision: bf16" in text


def test_full_fine_tuning_keeps_fp32_weights_under_bf16_autocast():
    text = render_config(spec(method="full", gpu_capability=(8, 0)))
    assert "torch_dtype=torch.float32," in text and "dtype='bfloat16'" in optim(text)


@pytest.mark.parametrize("choice", ["auto", "fp16"])
def test_gpu_without_bf16_or_fp16_chosen_uses_fp16_with_dynamic_scaling(choice):
    for cap in [(7, 5), (9, 0)] if choice == "fp16" else [(7, 5), None]:
        text = render_config(spec(method="qlora", gpu_capability=cap, hp={"precision": choice}))
        assert "torch_dtype=torch.float16," in text and "bnb_4bit_compute_dtype=torch.float16," in text
        assert "loss_scale='dynamic'" in optim(text) and "dtype='float16'" in optim(text)
        assert literal_assignments(text)["studio_fallbacks"] == []


def test_bf16_chosen_on_a_gpu_without_it_falls_back_with_one_line():
    text = render_config(spec(gpu_capability=(7, 0), hp={"precision": "bf16"}))
    assert "dtype='float16'" in optim(text)
    assert literal_assignments(text)["studio_fallbacks"] == [[precision.F_NO_BF16, {"capability": "7.0"}]]


def test_cpu_is_fp32_whatever_the_choice():
    for choice in ("auto", "bf16", "fp16"):
        text = render_config(spec(device="cpu", hp={"precision": choice}))
        assert "torch_dtype=torch.float32," in text and "type=OptimWrapper" in optim(text)
        assert "AmpOptimWrapper," not in optim(text)


def test_capability_is_the_lowest_of_the_gpus_the_run_uses():
    class G:
        def __init__(self, cap):
            self.compute_capability = cap
    assert precision.gpu_capability([G((9, 0)), G((7, 5))]) == (7, 5)
    assert precision.gpu_capability([G((9, 0)), G(None)]) is None
    assert precision.gpu_capability([]) is None


# --- packing -----------------------------------------------------------------------------------------

def test_packing_plan_per_machine():
    plan = packing.attention_plan
    assert plan(spec(flash_attn=True)).xtuner_varlen  # flash_attn on a GPU: XTuner's varlen path
    assert not plan(spec(flash_attn=True, hp={"batch_size": 2})).xtuner_varlen  # XTuner's varlen needs batch 1
    for s in (spec(), spec(device="cpu"), spec(flash_attn=True, hp={"batch_size": 2})):
        p = plan(s)
        assert (p.collate, p.packer_positions, p.notices) == ("packed", True, [])
    p = plan(spec(trust_remote_code=True))
    assert p.collate == "xtuner" and p.notices == [(packing.F_REMOTE_CODE, {})]
    assert not plan(spec(hp={"pack_to_max_length": False})).packer_positions


def test_config_of_each_packing_path():
    text = render_config(spec(device="cpu"))
    assert "collate_fn=dict(type=packed_collate_fn)" in text and "use_varlen_attn=True," in text
    assert literal_assignments(text)["use_varlen_attn"] is False and "VarlenAttnArgsToMessageHubHook)" not in text
    text = render_config(spec(flash_attn=True))
    assert literal_assignments(text)["use_varlen_attn"] is True
    assert "dict(type=VarlenAttnArgsToMessageHubHook)" in text and "packed_collate_fn)" not in text
    text = render_config(spec(device="cpu", hp={"pack_to_max_length": False}))
    assert "use_varlen_attn=False," in text and "default_collate_fn, use_varlen_attn" in text


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from core import demo
    import transformers

    path = demo.build_demo_model(tmp_path_factory.mktemp("tiny") / "m")
    return transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()


def test_packed_samples_do_not_attend_to_one_another(tiny_model):
    """The packed batch (per-sample position ids, no mask) gives each sample the logits it has alone;
    the same tokens under one causal mask do not (so this can fail)."""
    import torch

    a, b = list(range(5, 17)), list(range(40, 49))
    batch = packing.packed_collate_fn([{"input_ids": a + b, "labels": a + b,
                                        "position_ids": list(range(len(a))) + list(range(len(b)))},
                                       {"input_ids": b, "labels": b, "position_ids": list(range(len(b)))}])["data"]
    assert batch["input_ids"].shape == (2, len(a) + len(b)) and "attention_mask" not in batch
    assert batch["labels"][1, len(b):].eq(packing.IGNORE_INDEX).all()
    with torch.no_grad():
        # use_cache=False as in training (XTuner sets it): with a cache transformers ignores the packing
        packed = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone_a = tiny_model(input_ids=torch.tensor([a])).logits[0]
        alone_b = tiny_model(input_ids=torch.tensor([b])).logits[0]
        crossed = tiny_model(input_ids=batch["input_ids"][:1]).logits[0]
    torch.testing.assert_close(packed[0, :len(a)], alone_a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[0, len(a):], alone_b, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[1, :len(b)], alone_b, atol=1e-5, rtol=1e-4)
    assert (crossed[len(a):] - alone_b).abs().max() > 1e-3


# --- fallbacks and fused kernels ---------------------------------------------------------------------

def test_fallback_lines_round_trip_through_a_log(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("noise\n" + fallbacks.line(precision.F_NO_BF16, {"capability": "7.5"}) + "\n"
                   + fallbacks.line(precision.F_NO_BF16, {"capability": "7.5"}) + "\n"  # a second rank
                   + fallbacks.PREFIX + "{broken\n" + fallbacks.line(kernels.F_CPU) + "\n", encoding="utf-8")
    assert fallbacks.read(log) == [(precision.F_NO_BF16, {"capability": "7.5"}), (kernels.F_CPU, {})]
    assert fallbacks.read(tmp_path / "missing.log") == []


def run_apply(tmp_path, model_type: str, gpu: bool, setup: str = "", pythonpath: str = "") -> str:
    """kernels.apply in a fresh interpreter (a real import of liger-kernel, or its real absence)."""
    model = tmp_path / model_type
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"model_type": "%s"}' % model_type)
    code = (f"{setup}\nimport torch\ntorch.cuda.is_available = lambda: {gpu}\n"
            "from core.train import kernels\n"
            f"print('applied', kernels.apply({{'studio_fused_kernels': True, "
            f"'pretrained_model_name_or_path': {str(model)!r}}}))")
    env = dict(os.environ, PYTHONPATH=":".join(p for p in (pythonpath, str(REPO), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_fused_kernels_fall_back_on_the_cpu_missing_package_and_failing_import(tmp_path):
    assert kernels.apply({"studio_fused_kernels": False}) is False  # off: nothing printed, nothing tried
    out = run_apply(tmp_path, "qwen2", gpu=False)
    assert fallbacks.read_text(out) == [(kernels.F_CPU, {})] and "applied False" in out
    # the package missing (an import of it fails as for an uninstalled one)
    out = run_apply(tmp_path, "qwen2", gpu=True, setup="import sys; sys.modules['liger_kernel'] = None")
    assert fallbacks.read_text(out) == [(kernels.F_MISSING, {})] and "applied False" in out
    # a package that is there but fails to import
    broken = tmp_path / "broken" / "liger_kernel"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('liger-kernel requires transformers >= 5.0.0')\n")
    out = run_apply(tmp_path, "qwen2", gpu=True, pythonpath=str(broken.parent))
    [(template, params)] = fallbacks.read_text(out)
    assert template == kernels.F_IMPORT and "requires transformers" in params["error"] and "applied False" in out


def test_fused_kernels_fall_back_for_an_unsupported_family_and_a_failing_kernel(tmp_path):
    pytest.importorskip("liger_kernel.transformers.monkey_patch")
    out = run_apply(tmp_path, "gpt2", gpu=True)
    assert fallbacks.read_text(out) == [(kernels.F_ARCH, {"model_type": "gpt2"})]
    # a CPU that claims to be a GPU: Liger's Triton kernel really fails its probe, the model stays as it is
    out = run_apply(tmp_path, "qwen2", gpu=True)
    [(template, _)] = fallbacks.read_text(out)
    assert template == kernels.F_FAILED and "applied False" in out


# --- end to end on the CPU ---------------------------------------------------------------------------

@pytest.mark.slow
def test_a_run_with_fused_kernels_on_the_cpu_trains_packed_and_says_why_they_are_off(tmp_path, demo_workspace):
    """The real job path: packed samples through packed_collate_fn, the fused-kernel option on; the run
    succeeds, its log and the Train page (English and Chinese) carry the one fallback line."""
    import shutil

    from core import jobs
    from core.project import ProjectStore
    from core.results.metrics import ScalarsReader
    from core.train import runs
    from tests.apptests import open_page

    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    store = ProjectStore(ws)
    project = store.load("demo")
    project = store.save(project.model_copy(update={"hyperparams": project.hyperparams.model_copy(
        update={"fused_kernels": True, "precision": "bf16", "max_epochs": 1})}))
    run, _ = runs.start_new_run(project, "cpu")
    assert "collate_fn=dict(type=packed_collate_fn)" in run.config_path.read_text()
    job = jobs.wait_job(run.dir, timeout=600)
    assert job.state == "succeeded", run.log_path.read_text(errors="replace")[-3000:]
    assert fallbacks.read(run.log_path) == [(kernels.F_CPU, {})]
    reader = ScalarsReader(run.work_dir)
    reader.poll()
    _, loss = reader.series("loss")
    assert loss[-1] < loss[0] / 2
    at = open_page(ws, "pages/train.py")
    assert [i.value for i in at.info if "Fused kernels" in i.value] == [kernels.F_CPU]
    from ui import i18n

    at = open_page(ws, "pages/train.py", lang="zh")
    assert any(i.value == i18n.catalog("zh")[kernels.F_CPU] for i in at.info)


@pytest.mark.slow
def test_the_throughput_benchmark_without_a_gpu_checks_its_arithmetic_and_says_so():
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_throughput.py"), "--device", "cpu"], cwd=REPO,
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2:] == ["arithmetic=ok", "error=no GPU"]
    for name in ("app", "baseline"):
        [row] = [x for x in lines if x.startswith(name + ": tokens/s=")]
        assert float(row.split("tokens/s=")[1].split()[0]) > 0


def test_the_memory_estimate_counts_the_packed_samples_mask(tmp_path):
    from core.models.estimate import estimate, model_shape

    from tests.test_estimate import QWEN25_7B, model_dir

    shape = model_shape(model_dir(tmp_path, QWEN25_7B))
    packed = estimate(shape, "lora", Hyperparams(max_length=4096, batch_size=2))
    unpacked = estimate(shape, "lora", Hyperparams(max_length=4096, batch_size=2, pack_to_max_length=False))
    assert packed.parts["activations"] - unpacked.parts["activations"] == 2 * 4096 * 4096


@pytest.mark.parametrize("capability,choice,line,warning", [
    ((9, 0), "auto", precision.N_BF16, None),
    ((7, 5), "auto", precision.N_FP16.format(capability="7.5"), None),
    ((7, 5), "bf16", precision.N_FP16.format(capability="7.5"), precision.F_NO_BF16.format(capability="7.5")),
])
def test_configure_shows_the_precision_this_gpu_gets(tmp_path, demo_workspace, monkeypatch, capability, choice,
                                                    line, warning):
    import shutil

    from core.machine import system
    from core.project import ProjectStore
    from tests.apptests import open_page

    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    store = ProjectStore(ws)
    project = store.load("demo")
    store.save(project.model_copy(update={"hyperparams": project.hyperparams.model_copy(update={"precision": choice})}))
    gpu = system.GPU(0, "NVIDIA test GPU", 80 * 2**30, 0, None, "580", compute_capability=capability)
    monkeypatch.setattr(system, "gpus", lambda: [gpu])
    at = open_page(ws, "pages/configure.py")
    assert "Precision: " + line in [c.value for c in at.caption]
    assert [w.value for w in at.warning if "bf16 was chosen" in w.value] == ([warning] if warning else [])
    config = [c.value for c in at.code if "optim_wrapper" in c.value]
    assert config and (("dtype='bfloat16'" in config[0]) == (line == precision.N_BF16))
