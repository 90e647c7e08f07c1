"""``python -m core.smoke --multimodal``: XTuner's LLaVA end to end on the embedded tiny demo, offline.

Builds the tiny vision tower, LLM and pictures (``core.vision.demo``); stage 1 (projector on captions) and
stage 2 (LoRA on the LLM and on the encoder, the projector from stage 1) as the app's training jobs, each asking
about two held-out pictures at its checkpoints (XTuner's EvaluateChatHook); ``pth_to_hf`` + merge;
then asks about held-out pictures. Exit 0 only if the fine-tuned greedy answers name the right colour and
shape for a majority and the base model's (untrained projector) do not.
"""
from __future__ import annotations

import time
from pathlib import Path

STAGE1 = dict(lr=2e-2, max_epochs=1, batch_size=4, max_length=128, warmup_ratio=0.05, save_steps=1000,
              save_total_limit=1, logging_interval=5)
STAGE2 = dict(lr=3e-3, max_epochs=4, encoder_lora=True, batch_size=4, max_length=128, warmup_ratio=0.05, save_steps=1000,
              save_total_limit=1, logging_interval=5, lora_r=32, lora_alpha=64)
EVAL_PICTURES = 2  # held-out pictures asked about during both stages' training


def run(workspace: Path, device: str, timeout_s: float = 900, encoder: str = "tiny", method: str = "lora") -> int:
    """``encoder``: a key of ``core.vision.demo.ENCODERS`` ("clip-l-336": the real tower's size, for a GPU);
    ``method``: stage 2 on the LLM, lora or qlora (a GPU)."""
    from core import jobs
    from core.deploy.convert import export_dir
    from core.project import ProjectStore
    from core.results import evals
    from core.vision import chat as vchat
    from core.vision import demo as vdemo
    from core.train.configgen import E_QLORA_CPU, ConfigError
    from core.vision.configgen import VisionSpec
    from core.vision.runs import merged_dir, new_stage_run, start_convert, vision_outputs
    from core.train import runs

    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    if method == "qlora" and device != "cuda":  # before stage 1 trains for nothing
        say(f"stage 2 cannot start: {E_QLORA_CPU}")
        return 1
    store = ProjectStore(workspace)
    project = store.create("llava-demo", method="lora", prompt_template="qwen_chat")
    demo = vdemo.build(project.dir / "vision", encoder=encoder)
    project = store.save(project.model_copy(update={"model_path": str(demo.llm)}))
    say(f"tiny vision demo built: {len(demo.heldout)} held-out pictures")

    evaluation = demo.heldout[:EVAL_PICTURES]  # asked at each checkpoint by XTuner's EvaluateChatHook
    common = dict(llm_path=str(demo.llm), encoder_path=str(demo.encoder), image_folder=str(demo.images),
                  prompt_template="qwen_chat", device=device,
                  evaluation_images=[str(image) for image, _colour, _shape in evaluation],
                  evaluation_inputs=[vdemo.QUESTION] * len(evaluation))
    stages = {}
    for stage, data, hp in ((1, demo.pretrain, STAGE1), (2, demo.finetune, STAGE2)):
        extra = {"pretrained_pth": str(stages[1].checkpoints()[-1][1])} if stage == 2 else {}
        if stage == 2:
            extra["method"] = method
        try:
            run_ = new_stage_run(project, VisionSpec(stage=stage, data_path=str(data), **common, **hp, **extra))
        except ConfigError as e:
            say(f"stage {stage} cannot start: {e}")
            return 1
        runs.start_training(project, run_)
        job = jobs.wait_job(run_.dir, timeout=timeout_s)
        if job.state != "succeeded" or not run_.checkpoints():
            say(f"stage {stage} {job.state}: {job.reason}")
            print(run_.log_path.read_text(errors="replace")[-4000:])
            return 1
        stages[stage] = run_
        say(f"stage {stage} succeeded: {run_.id}, last {run_.checkpoints()[-1][1].name}{peak_memory(run_)}")
        answers = evals.timeline(run_.work_dir, "qwen_chat", common["evaluation_inputs"], images=True)
        if answers:
            it = max(answers)
            say(f"stage {stage} evaluation answers at iter {it}: {[a[:40] for a in answers[it]]}")

    tuned_run = stages[2]
    last = tuned_run.checkpoints()[-1][0]
    start_convert(project, tuned_run, last, device)
    cjob = jobs.wait_job(export_dir(tuned_run, last), timeout=timeout_s)
    if cjob.state != "succeeded":
        say(f"conversion {cjob.state}: {cjob.reason}")
        print((export_dir(tuned_run, last) / jobs.LOG_FILE).read_text(errors="replace")[-4000:])
        return 1
    say(f"converted and merged: {merged_dir(tuned_run, last)}")

    (out,) = [o for o in vision_outputs(project) if (o.run.id, o.iteration) == (tuned_run.id, last)]
    base = vchat.load(str(demo.llm), str(demo.encoder), None, device)
    tuned = vchat.load(str(out.llm), out.encoder, str(out.projector), device,
                       encoder_adapter=str(out.encoder_adapter) if out.encoder_adapter else None)
    hf_model = TransformersLlava(out.hf_llava, device)  # written by the conversion that succeeded
    right = {"base": 0, "fine-tuned": 0}
    same = 0  # the transformers folder's answer is the fine-tuned parts' answer
    for image, colour, shape in demo.heldout:
        line = [f"{image.name}:"]
        for name, vm in (("base", base), ("fine-tuned", tuned)):
            text = vchat.answer(vm, str(image), vdemo.QUESTION, "qwen_chat")
            ok = vdemo.names_it(text, colour, shape)
            right[name] += ok
            line.append(f"{name} {'OK ' if ok else 'no '}{text[:60]!r}")
        same += hf_model.answer(image, vdemo.QUESTION, "qwen_chat") == text
        print("  " + "  ".join(line), flush=True)
    n = len(demo.heldout)
    ok = right["fine-tuned"] * 2 > n and right["base"] * 2 <= n and same == n
    say(f"held-out accuracy: fine-tuned {right['fine-tuned']}/{n}, base {right['base']}/{n}")
    say(f"transformers LLaVA folder ({out.hf_llava.name}/): the fine-tuned answer for {same}/{n}")
    say("MULTIMODAL SMOKE OK" if ok else "MULTIMODAL SMOKE FAILED: the fine-tuned model must name colour and shape "
        "for a majority of held-out pictures, the base model not, and the transformers folder answer as the parts do")
    return 0 if ok else 1


def peak_memory(run) -> str:
    """", peak GPU memory N MB" from the run's logged scalars (nothing on a CPU)."""
    from core.results.metrics import ScalarsReader

    reader = ScalarsReader(run.work_dir)
    reader.poll()
    memory = reader.series("memory")[1]
    return f", peak GPU memory {max(memory):.0f} MB" if memory else ""


class TransformersLlava:
    """The converted checkpoint's transformers folder, loaded as anyone would: LlavaForConditionalGeneration and
    AutoProcessor, the prompt in the project's template, greedy with the template's stop words."""

    def __init__(self, folder: Path, device: str):
        import torch
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        from core.deploy import chat

        model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).to(device).eval()
        self.processor = AutoProcessor.from_pretrained(folder)
        self.loaded = chat.LoadedModel(key=(str(folder),), model=model, tokenizer=self.processor.tokenizer,
                                       device=device)

    def answer(self, image: Path, question: str, template: str) -> str:
        from PIL import Image

        from core.deploy import chat
        from core.vision.chat import ANSWER_TOKENS, IMAGE_TOKEN

        prompt = chat.build_prompt(template, f"{IMAGE_TOKEN}\n{question}")
        with Image.open(image) as im:
            inputs = self.processor(images=im.convert("RGB"), text=prompt, return_tensors="pt").to(self.loaded.device)
        return chat.stream_generate(self.loaded, template, dict(inputs),
                                    chat.GenerationSettings(max_new_tokens=ANSWER_TOKENS)).result()
