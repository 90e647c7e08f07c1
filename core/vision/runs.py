"""LLaVA stages as the app's runs: a run directory with its generated config and run.json, started by
``core.train.runs.start_training`` (the same detached job, progress, stop and checkpoints as text runs);
the conversion of a stage-2 checkpoint (``pth_to_hf`` + merge of the LLM adapter) as one job.

    runs/<stamp>-llava-stage1|2/  config.py run.json work_dir/iter_N.pth
        exports/iter_N/hf/        pth_to_hf (XTuner format): llm_adapter/, projector/
        exports/iter_N/merged/    the LLM with its adapter merged
        exports/iter_N/hf_llava/  all of it as one transformers LlavaForConditionalGeneration + LlavaProcessor
"""
from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core import jobs
from core.deploy.convert import E_NO_CHECKPOINT, export_dir
from core.errors import NotFound, UserError
from core.fsutil import atomic_write_json, atomic_write_text
from core.jobs import Job, Step
from core.paths import REPO_ROOT, python_executable
from core.project import Project
from core.train.launch import LaunchPlan
from core.train.runs import Run, list_runs, start_training, training_env
from core.vision.configgen import VisionSpec, checked, render

E_NOT_VISION = "This project is not in vision-language mode: set the encoder and the LLaVA files on Configure."
E_MISSING = ("Vision-language mode needs a base model with its prompt template, a vision encoder, an image folder and "
             "the stage's LLaVA file; missing: {missing}.")
MESSAGES = [E_NOT_VISION, E_MISSING]


def new_stage_run(project: Project, spec: VisionSpec) -> Run:
    """A run directory for one LLaVA stage with its config; ``ConfigError`` before anything is written."""
    spec = checked(spec)
    project.runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        run_dir = project.runs_dir / (f"{stamp}-llava-stage{spec.stage}" + (f"-{n}" if n > 1 else ""))
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            n += 1
    run = Run(run_dir)
    try:
        spec = spec.model_copy(update={"progress_file": str(run.progress_path),
                                       "stop_file": str(run.dir / jobs.STOP_FILE)})
        atomic_write_text(run.config_path, render(spec))
        atomic_write_json(run.dir / "run.json", {
            "id": run.id, "project": project.name, "device": spec.device, "kind": "llava",
            "spec": {**spec.model_dump(mode="json"), "method": spec.method, "model_path": spec.llm_path},
            "launch": LaunchPlan().model_dump(mode="json"), "warm_start": None,
            "created_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        })
    except BaseException:
        shutil.rmtree(run.dir, ignore_errors=True)
        raise
    return run


def merged_dir(run: Run, iteration: int) -> Path:
    return export_dir(run, iteration) / "merged"


def hf_llava_dir(run: Run, iteration: int) -> Path:
    """The checkpoint as one transformers ``LlavaForConditionalGeneration`` folder (``core.vision.hf_export``)."""
    return export_dir(run, iteration) / "hf_llava"


def projector_dir(run: Run, iteration: int) -> Path:
    return export_dir(run, iteration) / "hf" / "projector"


def start_convert(project: Project, run: Run, iteration: int, device: str) -> Job:
    """``pth_to_hf`` of a stage-2 checkpoint, the LLM adapter merged into its base, and the whole model as one
    transformers LLaVA folder, as one job."""
    ckpt = dict(run.checkpoints()).get(iteration)
    if ckpt is None:
        raise NotFound(E_NO_CHECKPOINT, run=run.id, iteration=iteration)
    out, env, py = export_dir(run, iteration), training_env(project), python_executable()
    clean = [py, "-m", "core.deploy.convert", "clean"]
    steps = [
        Step(name="pth_to_hf",
             argv=[py, "-m", "core.train.xtuner_entry", "pth_to_hf", str(run.config_path), str(ckpt),
                   str(out / "hf"), "--safe-serialization", "--save-format", "xtuner"]
             + (["--fp32"] if device == "cpu" else []),
             env=env, cwd=str(REPO_ROOT), cleanup_argv=clean + [str(out / "hf")]),
        Step(name="merge",
             argv=[py, "-m", "core.train.xtuner_entry", "merge", run.spec["llm_path"], str(out / "hf" / "llm_adapter"),
                   str(out / "merged"), "--safe-serialization", "--device", "cpu" if device == "cpu" else "auto"],
             env=env, cwd=str(REPO_ROOT), cleanup_argv=clean + [str(out / "merged")]),
    ]
    hf = out / "hf"
    steps.append(Step(name="transformers_llava",
                      argv=[py, "-m", "core.vision.hf_export", str(merged_dir(run, iteration)), run.spec["encoder_path"],
                            str(hf / "projector"), str(hf_llava_dir(run, iteration))]
                      + (["--encoder-adapter", str(hf / "visual_encoder_adapter")] if run.spec.get("encoder_lora") else []),
                      env=env, cwd=str(REPO_ROOT), cleanup_argv=clean + [str(hf_llava_dir(run, iteration))]))
    return jobs.start_job(out, steps, kind="convert", title=f"Convert {run.id} iter {iteration}",
                          meta={"project": project.name, "run": run.id, "iteration": iteration, "merge": True})


@dataclass
class VisionOutput:
    """A converted stage-2 checkpoint: what a chat about an image loads."""

    run: Run
    iteration: int
    llm: Path  # the merged LLM
    projector: Path
    encoder: str
    encoder_adapter: Optional[Path]
    base_llm: str
    template: str
    hf_llava: Optional[Path]  # the transformers LLaVA folder, when the conversion wrote it


def vision_outputs(project: Project) -> list[VisionOutput]:
    """The project's converted stage-2 checkpoints, newest run first."""
    found = []
    for run in list_runs(project):
        spec = run.spec
        if spec.get("stage") != 2:
            continue
        for iteration in sorted((int(p.name[5:]) for p in (run.dir / "exports").glob("iter_*")
                                 if p.name[5:].isdigit()), reverse=True):
            merged, projector = merged_dir(run, iteration), projector_dir(run, iteration)
            if (merged / "config.json").is_file() and (projector / "config.json").is_file():
                adapter, hf = projector.parent / "visual_encoder_adapter", hf_llava_dir(run, iteration)
                found.append(VisionOutput(run, iteration, merged, projector, spec["encoder_path"],
                                          adapter if adapter.is_dir() else None, spec["llm_path"],
                                          spec["prompt_template"], hf if (hf / "config.json").is_file() else None))
    return found


def stage_spec(project: Project, stage: int, device: str, pretrained_pth: Optional[str] = None) -> VisionSpec:
    """One stage's spec from the project: its LLM, template and hyperparameters, its vision setup."""
    vision = project.vision
    if vision is None:
        raise UserError(E_NOT_VISION)
    data = vision.pretrain_data if stage == 1 else vision.finetune_data
    missing = [name for name, value in (("model_path", project.model_path), ("prompt_template", project.prompt_template),
                                        ("encoder_path", vision.encoder_path), ("image_folder", vision.image_folder),
                                        ("pretrain_data" if stage == 1 else "finetune_data", data)) if not value]
    if missing:
        raise UserError(E_MISSING, missing=", ".join(missing))
    hp = project.hyperparams
    return VisionSpec(
        stage=stage, method="qlora" if stage == 2 and project.method == "qlora" else "lora",
        llm_path=project.model_path, encoder_path=vision.encoder_path, data_path=data,
        image_folder=vision.image_folder, prompt_template=project.prompt_template, device=device,
        pretrained_pth=pretrained_pth if stage == 2 else None, encoder_lora=stage == 2 and vision.encoder_lora,
        lr=vision.pretrain_lr if stage == 1 else hp.lr, max_epochs=hp.max_epochs, batch_size=hp.batch_size,
        max_length=hp.max_length, lora_r=hp.lora_r, lora_alpha=hp.lora_alpha, warmup_ratio=hp.warmup_ratio,
        save_steps=hp.save_steps, save_total_limit=hp.save_total_limit, logging_interval=hp.logging_interval,
        seed=hp.seed or 0, evaluation_images=[p.image for p in vision.evaluation],
        evaluation_inputs=[p.question for p in vision.evaluation])


def start_stage(project: Project, stage: int, device: str, pretrained_pth: Optional[str] = None) -> Run:
    """A new run for ``stage`` (stage 2 from the stage-1 checkpoint ``pretrained_pth``), started as a job."""
    run = new_stage_run(project, stage_spec(project, stage, device, pretrained_pth))
    start_training(project, run)
    return run


def stage1_checkpoints(project: Project) -> list[tuple[Run, int, Path]]:
    """Every complete checkpoint of the project's stage-1 runs, newest first: what stage 2 can start from."""
    return [(run, it, path) for run in list_runs(project) if run.spec.get("stage") == 1
            for it, path in reversed(run.complete_checkpoints())]
