import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root():
    from duomem.data import data_root as find

    if not os.environ.get("ALFWORLD_DATA"):
        pytest.fail("the tests need real ALFWorld games: set ALFWORLD_DATA (see README, 'Data')")
    return find()


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    from duomem.models import convert_gguf, packaged_gguf

    return convert_gguf(packaged_gguf(), tmp_path_factory.mktemp("models") / "smollm2")


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir, tmp_path_factory):
    from duomem.models import make_tiny_random

    return make_tiny_random(smollm2_dir, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def valid_unseen(data_root):
    from duomem.data import build_manifest

    return build_manifest(data_root, "valid_unseen")


SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SMOKE_CONFIG = REPO / "config" / "smoke.yaml"


def snakemake(*args, workdir=None, check=True, timeout=900, env=None):
    """Run the repository's Snakefile (in `workdir`); raise with the output's tail on failure."""
    cmd = SNAKEMAKE + ["-s", str(REPO / "Snakefile")] + (["-d", str(workdir)] if workdir else []) + list(args)
    r = subprocess.run(cmd, cwd=workdir or REPO, capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def job_counts(output):
    counts, in_table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif parts and not set(line.strip()) <= {"-", " "}:
                break
    return counts


SLURM_SCRIPT = REPO / "scripts" / "slurm-local.sh"
SLURM_PROFILE = str(REPO / "profiles" / "slurm")
SLURM_ACCOUNT, SLURM_PARTITION = "duomem", "debug"  # what scripts/slurm-local.sh creates
# Status checks from 2 s after a submission instead of 40 s, outputs seen at once (one file system):
# only waiting shrinks; the profile's settings (squeue status, retries, requeue, ...) stay as they are.
SLURM_FAST = ["--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5"]


@pytest.fixture(scope="session")
def slurm_cluster():
    """The environment of a run on the single-node SLURM cluster of this machine
    (scripts/slurm-local.sh: installed and started if need be, stopped afterwards if it was not up)."""
    import shutil

    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.fail("no SLURM and no apt-get to install it (scripts/slurm-local.sh needs Debian/Ubuntu)")
    was_up = subprocess.run([SLURM_SCRIPT, "status"], capture_output=True).returncode == 0
    r = subprocess.run([SLURM_SCRIPT, "start"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"scripts/slurm-local.sh start failed:\n{r.stdout}\n{r.stderr}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "DUOMEM_"))}
    # jobs inherit this environment (sbatch --export=ALL): this venv's python and snakemake first
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               DUOMEM_SLURM_ACCOUNT=SLURM_ACCOUNT, DUOMEM_SLURM_PARTITION=SLURM_PARTITION)
    yield env
    if not was_up:
        subprocess.run([SLURM_SCRIPT, "stop"], capture_output=True, timeout=300)


@pytest.fixture(scope="session", autouse=True)
def _slurm_controller_for_every_snakemake_call(request):
    """Where SLURM's tools are installed, the cluster runs for the whole session: snakemake-executor-
    plugin-slurm runs `scontrol show config` when it is imported (every `snakemake` call, any
    executor), and without a reachable controller that waits 9-10 s before giving up (README,
    "Troubleshooting"). Where they are not, the plugin's check fails at once and the cluster starts
    when a test first needs it."""
    import shutil

    if shutil.which("scontrol"):
        request.getfixturevalue("slurm_cluster")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_root, slurm_cluster):
    """One end-to-end run of the smoke config, shared by every test that inspects its outputs
    (it costs minutes). It runs the way the paper runs: through `--profile profiles/slurm` on this
    machine's SLURM cluster (model jobs as SLURM jobs, light ones inside Snakemake); its log is in
    `smoke-run.log` beside the folder. Tests may rerun parts of it (locally) but must leave its
    outputs complete."""
    # DUOMEM_SMOKE_DIR (development only): reuse that folder; Snakemake then reruns only what is
    # missing or whose params changed (code changes alone do not trigger reruns).
    reuse = os.environ.get("DUOMEM_SMOKE_DIR")
    workdir = Path(reuse) if reuse else tmp_path_factory.mktemp("smoke")
    workdir.mkdir(parents=True, exist_ok=True)
    r = snakemake("--profile", SLURM_PROFILE, "--configfile", str(SMOKE_CONFIG), *SLURM_FAST, workdir=workdir,
                  env=slurm_cluster, timeout=2400)
    (workdir.parent / "smoke-run.log").write_text(r.stdout + r.stderr)
    return workdir


@pytest.fixture(scope="session")
def smollm2_adapter(smollm2_dir, data_root, tmp_path_factory):
    """A real LoRA adapter on SmolLM2, trained by `train_lora` on the handcoded expert's trajectories of
    three train games (a few steps at a high learning rate: enough to change its actions)."""
    import json

    from duomem.collect import collect
    from duomem.data import build_manifest
    from duomem.lora import train_lora
    from duomem.policies import make_policy
    from duomem.sft import build_sft_dataset

    d = tmp_path_factory.mktemp("smollm2-adapter")
    tasks = build_manifest(data_root, "train", per_task_type=1, seed=0)[:3]
    (d / "manifest.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    collect(d / "manifest.jsonl", d / "trajectories.jsonl", d / "stats.json", lambda: make_policy("expert"),
            attempts=1, retries=0, max_steps=30, num_envs=2, alfworld_data=str(data_root), expert=True,
            progress=False)
    build_sft_dataset(d / "trajectories.jsonl", d / "sft.jsonl", "full")
    train_lora(smollm2_dir, d / "sft.jsonl", d / "adapter", rank=8, lr=5e-3, epochs=1, threads=2, max_length=512,
               batch_size=1, grad_accum=1, logging_steps=1, gradient_checkpointing=False, bf16=False, progress=False)
    return d / "adapter"
