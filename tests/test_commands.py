"""CLI commands and Slurm script: exact XTuner commands, every value shell-quoted."""
import shlex
import subprocess

import pytest

from core.train.commands import CommandError, Layout, chat_command, convert_commands, shell_script, slurm_script, train_commands
from core.project import Project

HOSTILE = "/tmp/x'; touch /tmp/pwned; echo '$(id) `id` {a}\n"


def project(tmp_path, **kw):
    base = dict(name="p", workspace=str(tmp_path), download_cache=str(tmp_path), method="lora",
                model_path="/models/base", prompt_template="qwen_chat", dataset_path="/d.jsonl")
    return Project(**(base | kw))


def test_single_gpu_commands_are_xtuners_own(tmp_path):
    p = project(tmp_path)
    lay = Layout.for_project(p)
    assert train_commands(p, lay) == [f"xtuner train {lay.config} --work-dir {lay.work_dir}"]
    conv = convert_commands(p, lay)
    assert conv[0].startswith(f"xtuner convert pth_to_hf {lay.config} \"$(cat {lay.work_dir}/last_checkpoint)\"")
    assert conv[1] == f"xtuner convert merge /models/base {lay.hf_dir} {lay.merged_dir} --max-shard-size 2GB"
    assert chat_command(p, lay) == f"xtuner chat {lay.merged_dir} --prompt-template qwen_chat"
    assert len(convert_commands(project(tmp_path, method="full"), lay)) == 1


def test_multi_gpu_multi_node_and_deepspeed(tmp_path):
    p = project(tmp_path, num_gpus=8, num_nodes=2, deepspeed="deepspeed_zero2")
    cmds = train_commands(p, Layout.for_project(p), master_addr="10.0.0.1")
    assert len(cmds) == 2
    assert cmds[1].startswith("NPROC_PER_NODE=8 NNODES=2 NODE_RANK=1 ADDR=10.0.0.1 PORT=29500 xtuner train ")
    assert cmds[1].endswith("--deepspeed deepspeed_zero2")
    script = slurm_script(p, Layout.for_project(p), partition="gpu", job_name="ft", time_limit="24:00:00")
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=8" in script and "#SBATCH --gres=gpu:8" in script
    assert "--launcher slurm" in script and "srun xtuner train" in script


def test_user_text_is_never_interpreted_by_the_shell(tmp_path):
    p = project(tmp_path, model_path=HOSTILE, system_prompt=HOSTILE, prompt_template="qwen_chat")
    lay = Layout(config=tmp_path / "c o n f'ig.py", work_dir=tmp_path / "w", hf_dir=tmp_path / "h", merged_dir=tmp_path / "m")
    merge = convert_commands(p, lay)[1]
    assert shlex.split(merge)[3] == HOSTILE
    chat = chat_command(p, lay)
    assert shlex.split(chat)[-1] == HOSTILE
    script = shell_script(p, lay)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # valid shell
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kw,msg", [
    (dict(partition="gpu; rm -rf /"), "partition"),
    (dict(job_name="a b"), "job name"),
    (dict(time_limit="$(id)"), "time limit"),
])
def test_slurm_fields_are_checked(tmp_path, kw, msg):
    p = project(tmp_path)
    with pytest.raises(CommandError, match=msg):
        slurm_script(p, Layout.for_project(p), **kw)


def test_unknown_deepspeed_or_missing_model_is_refused(tmp_path):
    with pytest.raises(CommandError, match="Unknown DeepSpeed"):
        train_commands(project(tmp_path, deepspeed="zero9; id"), Layout.for_project(project(tmp_path)))
    with pytest.raises(CommandError, match="Model & Data"):
        train_commands(project(tmp_path, model_path=None), Layout.for_project(project(tmp_path)))
