"""XTuner Studio's domain package: never imports streamlit; torch/transformers/xtuner only inside functions.

Subpackages: ``data`` (datasets), ``models`` (base models and hubs), ``train`` (configs, launch, runs,
hooks that run inside XTuner), ``jobs`` (detached supervised processes), ``results`` (reading what runs
wrote, charts), ``deploy`` (convert, chat, export), ``machine`` (GPUs, doctor). Top level: paths, atomic
files, the project, workspace settings, the demo and the smoke test.
"""

# The modules that run as their own process (``python -m <module>``); every other module is imported.
# A test keeps this list and the modules with a ``__main__`` block identical.
ENTRY_POINTS = (
    "core.jobs.supervisor",  # the detached supervisor of one job
    "core.train.xtuner_entry",  # an XTuner tool (train, pth_to_hf, merge, chat) inside a job step
    "core.models.hub",  # a download, inside a job step
    "core.data.datastats",  # token counting, inside a job step
    "core.deploy.export",  # a push to a model hub, inside a job step
    "core.vision.hf_export",  # a converted LLaVA checkpoint as one transformers folder, inside a job step
    "core.deploy.gguf_convert",  # a GGUF export (llama.cpp's converter / quantizer), inside a job step
    "core.machine.doctor",  # the environment probe, inside a job step
    "core.machine.gpu_check",  # one training path checked on a GPU machine (by hand)
    "core.train.queue",  # `run WORKSPACE`: the run queue's runner (a job step); `kick WORKSPACE`: start one
    "core.train.runs",  # `clean RUN_DIR`: a failed step's partial checkpoints, run by the supervisor
    "core.deploy.convert",  # `clean DIR`: a failed conversion's partial output, run by the supervisor
    "core.demo",  # builds the demo project
    "core.smoke",  # the whole pipeline headless
)
