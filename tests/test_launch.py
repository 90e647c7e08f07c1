import sys
from pathlib import Path

import pytest

from core.project import Project
from core.train import commands, launch
from core.train.launch import LaunchError, LaunchPlan, check_plan, train_argv


def test_one_process_runs_the_tool_module_with_this_interpreter():
    argv = train_argv(LaunchPlan(), "cfg.py", "wd")
    assert argv == [sys.executable, "-m", "core.train.xtuner_entry", "train", "cfg.py", "--work-dir", "wd"]
    argv = train_argv(LaunchPlan(), "cfg.py", "wd", resume_from="wd/iter_5.pth")
    assert argv[-2:] == ["--resume", "wd/iter_5.pth"]


def test_several_gpus_go_through_torchrun_like_xtuner():
    argv = train_argv(LaunchPlan(nproc_per_node=4), "cfg.py", "wd", port=29511)
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert argv[3:8] == ["--nnodes=1", "--node_rank=0", "--nproc_per_node=4", "--master_addr=127.0.0.1",
                         "--master_port=29511"]
    assert argv[8:] == ["-m", "core.train.xtuner_entry", "train", "cfg.py", "--work-dir", "wd", "--launcher", "pytorch"]


def test_several_nodes_and_deepspeed():
    plan = LaunchPlan(nproc_per_node=8, nnodes=2, node_rank=1, master_addr="10.0.0.5", master_port=29600,
                      deepspeed="deepspeed_zero2")
    argv = train_argv(plan, "cfg.py", "wd", resume_from="wd/iter_9.pth")
    assert "--nnodes=2" in argv and "--node_rank=1" in argv and "--master_addr=10.0.0.5" in argv
    assert "--master_port=29600" in argv
    tail = argv[argv.index("core.train.xtuner_entry"):]
    assert tail == ["core.train.xtuner_entry", "train", "cfg.py", "--work-dir", "wd", "--deepspeed", "deepspeed_zero2",
                    "--resume", "wd/iter_9.pth", "--launcher", "pytorch"]
    # the same launch as XTuner's own command line (core.train.commands is the one builder of those)
    project = Project(name="p", workspace="/w", download_cache="/w/d", model_path="/m", prompt_template="qwen_chat",
                      num_gpus=8, num_nodes=2, node_rank=1, master_addr="10.0.0.5", master_port=29600,
                      deepspeed="deepspeed_zero2")
    layout = commands.Layout(Path("cfg.py"), Path("wd"), Path("hf"), Path("merged"))
    assert commands.train_commands(project, layout, master_addr="10.0.0.5", port=29600)[1] == (
        "NPROC_PER_NODE=8 NNODES=2 NODE_RANK=1 ADDR=10.0.0.5 PORT=29600 "
        "xtuner train cfg.py --work-dir wd --deepspeed deepspeed_zero2")
    assert launch.plan_for(project) == plan


def test_deepspeed_on_one_gpu_still_uses_torchrun():
    """Without torchrun's RANK/WORLD_SIZE, DeepSpeed looks for its rank through MPI (mpi4py)."""
    argv = train_argv(LaunchPlan(deepspeed="deepspeed_zero3"), "cfg.py", "wd", port=1234)
    assert "torch.distributed.run" in argv and "--nproc_per_node=1" in argv


def test_a_free_port_is_picked_when_none_is_set():
    argv = train_argv(LaunchPlan(nproc_per_node=2), "cfg.py", "wd")
    port = int(next(a for a in argv if a.startswith("--master_port=")).split("=")[1])
    assert 0 < port < 65536


@pytest.mark.parametrize("plan, device, gpus, expected", [
    (LaunchPlan(nproc_per_node=2), "cpu", 0, "several GPUs needs NVIDIA GPUs"),
    (LaunchPlan(nproc_per_node=4), "cuda", 2, "4 GPUs asked for, but this machine has 2"),
    (LaunchPlan(deepspeed="deepspeed_zero2"), "cpu", 0, "DeepSpeed needs an NVIDIA GPU"),
    (LaunchPlan(deepspeed="zero9"), "cuda", 1, "Unknown DeepSpeed preset"),
    (LaunchPlan(nnodes=2, master_port=1), "cpu", 0, "several nodes needs NVIDIA GPUs"),
    (LaunchPlan(nnodes=2, node_rank=2, master_port=29500), "cuda", 1, "Node rank 2 is out of range"),
    (LaunchPlan(master_addr="$(reboot)"), "cuda", 1, "not a host name"),
    (LaunchPlan(nnodes=2), "cuda", 1, "fixed master port"),
])
def test_plans_that_cannot_work_here_say_why(plan, device, gpus, expected):
    with pytest.raises(LaunchError) as e:
        check_plan(plan, device, gpus)
    assert expected in str(e.value)
    assert e.value.why.template  # the UI translates the template and fills in the values


def test_plans_that_can_work():
    check_plan(LaunchPlan(), "cpu", 0)
    check_plan(LaunchPlan(nproc_per_node=2, nnodes=2, node_rank=1, master_addr="node-0", master_port=29500),
               "cuda", 2)


def test_deepspeed_presets_are_xtuners_own():
    from pathlib import Path

    import xtuner

    shipped = {p.stem for p in (Path(xtuner.__file__).parent / "configs" / "deepspeed").glob("*.json")}
    assert set(launch.DEEPSPEED_PRESETS) == shipped
    for preset in launch.DEEPSPEED_PRESETS:
        assert "NVIDIA GPU" in str(launch.deepspeed_unavailable(preset, "cpu"))


def test_plan_for_a_project(workspace):
    from core.project import ProjectStore

    p = ProjectStore(workspace).create("p", num_gpus=0)
    assert launch.plan_for(p) == LaunchPlan()
    p = p.model_copy(update={"num_gpus": 2, "num_nodes": 3, "node_rank": 1, "master_addr": "h", "master_port": 7,
                             "deepspeed": "deepspeed_zero1"})
    assert launch.plan_for(p) == LaunchPlan(nproc_per_node=2, nnodes=3, node_rank=1, master_addr="h", master_port=7,
                                            deepspeed="deepspeed_zero1")
