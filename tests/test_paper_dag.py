"""The paper config's DAG: every job of the paper is planned, and one changed value plans exactly its
dependents.

The change tests run on a workdir where the whole paper DAG is "done": every output exists (empty)
and `snakemake --touch --forceall` has stamped it in DAG order and recorded each job's parameters,
as a finished run would. Hub models are ids, not files, and the manifest rule reads $ALFWORLD_DATA
only when it runs, so nothing outside the workdir is needed. A change then comes in as a second
config file (`--configfile config.yaml overlay.yaml`, merged key by key), and a dry run lists what
it would rerun.
"""

import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO, job_counts, snakemake

PAPER = str(REPO / "config.yaml")

# Rules of the paper's pipeline; their job counts are asserted exactly. Tables 1-10 are one job
# each. Other rules are allowed only when they only report (the figures, the paper comparison, the
# trajectory viewer pages, later report rules), so new report rules do not break these tests.
PIPELINE_RULES = ("manifest", "collect_trajectories", "embed_tasks", "build_sft", "extract_memories",
                  "embed_memories", "train_lora", "select_adapter", "select_strategy_adapter",
                  "evaluate", "engine")
TABLES = tuple(f"table{i}" for i in range(1, 11))
REPORT_PREFIXES = ("table", "figure", "report", "viewer", "paper_comparison", "all")

STUDENTS, LORA_MODELS, RANKS, LRS = 11, 4, 3, 4
GRID = RANKS * LRS  # adapters per model and input strategy
MEMORIES = 6  # none, trajectory, script-self, script-cd, memp-self, memp-cd
TEACHER_MEMORIES = 4  # the teacher's own bank is the CD bank: no script-cd / memp-cd
K_ABLATION = 9 * 2  # figure 3: k = 1..9, Script and MemP with CD, for Qwen3-14B
DEV_EVALS = LORA_MODELS * GRID + 2 * GRID  # one per adapter: main grids + Latest Only / Last-5 grids
LORA_EVALS = LORA_MODELS * MEMORIES + 2 * 2  # selected adapter x every memory; table 5's two others
# evaluation.share_engine: one engine (a service job) per model on each split it is evaluated on:
# the test split for the students and the teacher, the dev split for the LoRA models' grids
ENGINES = STUDENTS + 1 + LORA_MODELS


# `snakemake --touch`, except that it does not sleep 0.1 s before each job (Snakemake's touch
# executor does, to give each job a later mtime than the one before; every file system here stamps
# nanoseconds, and an equal mtime never triggers a rerun): 5 s instead of 45 s for the paper DAG.
FAST_TOUCH = ("import snakemake.executors.touch as touch; touch.Executor.SLEEPING_TIME = 0; "
              "from snakemake.cli import main; main()")


def plan(*args, workdir):
    """Job counts of a dry run (empty when nothing would run), and its wall-clock seconds."""
    t0 = time.time()
    # --cores: a shared engine and its consumers are one group job, which needs the engine's threads
    r = snakemake("-n", "--cores", "4", *args, "-q", "rules", workdir=workdir)  # -q takes a list: last
    return job_counts(r.stdout), time.time() - t0


def pipeline(counts):
    """The counts of the pipeline rules (0 where absent); fails on a rule this test does not know."""
    unknown = [r for r in counts
               if r not in PIPELINE_RULES + ("total",) and not r.startswith(REPORT_PREFIXES)]
    assert not unknown, f"rules this test does not know: {unknown}"
    return {r: counts.get(r, 0) for r in PIPELINE_RULES}


def planned_jobs(output):
    """(rule, wildcards) of every job a dry run lists."""
    jobs = []
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            jobs.append((line.split()[1].rstrip(":"), {}))
        elif line.startswith("    wildcards: ") and jobs:
            jobs[-1][1].update(kv.split("=", 1) for kv in line.split(": ", 1)[1].split(", "))
    return jobs


def overlay(tmp_path, name, values):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--configfile", PAPER, str(path)]


def test_table1_plans_every_job_it_needs(tmp_path):
    counts, elapsed = plan("results/table1.csv", "--configfile", PAPER, workdir=tmp_path)
    # No Memory, MemP, MemP+CD for the 11 students; No Memory and MemP (own bank) for the teacher;
    # +LoRA and DuoMem (MemP / MemP+CD with the selected adapter) for the 4 LoRA students, whose
    # adapters (Full History grid) are chosen by one dev evaluation each.
    assert pipeline(counts) == {
        "manifest": 3, "collect_trajectories": 1, "embed_tasks": 2, "build_sft": 1,
        "extract_memories": STUDENTS + 1, "embed_memories": STUDENTS + 1,
        "train_lora": LORA_MODELS * GRID, "select_adapter": LORA_MODELS,
        "select_strategy_adapter": 0,
        "evaluate": STUDENTS * 3 + 2 + LORA_MODELS * 2 + LORA_MODELS * GRID,
        "engine": ENGINES,
    }
    assert counts["table1"] == 1
    print(f"paper dry run of results/table1.csv: {elapsed:.1f} s")


def test_all_plans_every_job_of_the_paper(tmp_path):
    counts, elapsed = plan("--configfile", PAPER, workdir=tmp_path)
    assert pipeline(counts) == {
        "manifest": 3,  # train, valid_seen (dev), valid_unseen (test)
        "collect_trajectories": 1,  # the teacher on the train games
        "embed_tasks": 2,  # test and dev task descriptions
        "build_sft": 3,  # Full History, Latest Only, Last-5
        "extract_memories": STUDENTS + 1,  # each student's own bank and the teacher's (CD)
        "embed_memories": STUDENTS + 1,
        "train_lora": DEV_EVALS,
        "select_adapter": LORA_MODELS,
        "select_strategy_adapter": 2,  # Latest Only and Last-5 for Qwen3-4B (table 5)
        "evaluate": STUDENTS * MEMORIES + TEACHER_MEMORIES + K_ABLATION + DEV_EVALS + LORA_EVALS,
        "engine": ENGINES,  # 16 engine start-ups for 188 evaluations (each started its own before)
    }
    assert all(counts.get(t) == 1 for t in TABLES), counts
    assert counts["all"] == 1
    # Its time is reported, not asserted: `python -m duomem.benchmark` measures it on a quiet machine.
    print(f"paper dry run of all ({counts['total']} jobs): {elapsed:.1f} s")


@pytest.fixture(scope="module")
def done_paper(tmp_path_factory):
    """A workdir in which every job of the paper config looks finished (see the module docstring)."""
    workdir = tmp_path_factory.mktemp("paper-done")
    t0 = time.time()
    summary = snakemake("--summary", "--configfile", PAPER, workdir=workdir).stdout
    for line in summary.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[0] == "output_file":
            continue
        path = workdir / fields[0]
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:  # directory() outputs (LoRA adapters) are the workflow's only suffix-less outputs
            path.mkdir(parents=True, exist_ok=True)
    touch = subprocess.run(
        [sys.executable, "-c", FAST_TOUCH, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
         "--touch", "--forceall", "--cores", "4", "-q", "all", "--configfile", PAPER],
        cwd=workdir, capture_output=True, text=True, timeout=900)
    assert touch.returncode == 0, touch.stdout[-3000:] + touch.stderr[-3000:]
    counts, _ = plan("--configfile", PAPER, workdir=workdir)
    assert counts == {}, f"the completed paper DAG still plans {counts}"
    print(f"paper DAG marked done in {time.time() - t0:.1f} s")
    return workdir


def test_one_learning_rate_reruns_only_its_adapters(done_paper, tmp_path):
    # 5e-5 -> 1e-4: the grid's new adapters (3 ranks for each of the 4 models' Full History grids
    # and Qwen3-4B's Latest Only / Last-5 grids), their dev evaluations, every selection (a new
    # candidate) and every evaluation with a selected adapter; no data, memory or SFT job.
    changed = overlay(tmp_path, "lr", {"lora": {"lrs": [1.0e-6, 5.0e-6, 1.0e-5, 1.0e-4]}})
    counts, _ = plan(*changed, workdir=done_paper)
    new_adapters = RANKS * (LORA_MODELS + 2)
    assert pipeline(counts) == dict.fromkeys(PIPELINE_RULES, 0) | {
        "train_lora": new_adapters, "select_adapter": LORA_MODELS, "select_strategy_adapter": 2,
        "evaluate": new_adapters + LORA_EVALS,
        "engine": 2 * LORA_MODELS,  # each LoRA model's dev and test engines, for those evaluations only
    }
    assert {"table1", "table2", "table4", "table5", "table8"} <= set(counts)
    assert not {"table6", "table9"} & set(counts)  # teacher statistics, CD ablation: no adapters


@pytest.mark.parametrize("setting", [{"gradient_checkpointing": False}, {"dropout": 0.0}, {"top_layers": 20},
                                     {"prompt_grad": False},
                                     {"scheduler": "warmup_stable_decay"}])
def test_training_settings_rerun_only_the_adapters(done_paper, tmp_path, setting):
    # Gradient checkpointing on -> off, no dropout, LoRA on the top 20 layers, the prompt without
    # autograd: every adapter of every grid is trained again, so its dev evaluation, every selection
    # and every evaluation with a selected adapter; nothing else.
    changed = overlay(tmp_path, "training", {"lora": setting})
    counts, _ = plan(*changed, workdir=done_paper)
    assert pipeline(counts) == dict.fromkeys(PIPELINE_RULES, 0) | {
        "train_lora": DEV_EVALS, "select_adapter": LORA_MODELS, "select_strategy_adapter": 2,
        "evaluate": DEV_EVALS + LORA_EVALS, "engine": 2 * LORA_MODELS,
    }


def test_decay_ratio_reruns_nothing_under_another_schedule(done_paper, tmp_path):
    # lora.decay_ratio belongs to warmup_stable_decay only: under the paper's cosine it reruns nothing.
    changed = overlay(tmp_path, "decay", {"lora": {"decay_ratio": 0.5}})
    counts, _ = plan(*changed, workdir=done_paper)
    assert pipeline(counts) == dict.fromkeys(PIPELINE_RULES, 0)


def test_teacher_sampling_reruns_only_the_collection_and_what_reads_it(done_paper, tmp_path):
    # The teacher's temperature: its collection, then every memory bank and SFT set built from the
    # trajectories, and so every job downstream of those (here: all but the manifests and the
    # task embeddings, which do not read trajectories).
    changed = overlay(tmp_path, "temperature", {"teacher_collection": {"temperature": 0.9}})
    counts, _ = plan(*changed, workdir=done_paper)
    assert counts["collect_trajectories"] == 1 and counts["build_sft"] == 3
    assert "manifest" not in counts and "embed_tasks" not in counts


def test_k_reruns_only_the_retrieving_evaluations(done_paper, tmp_path):
    # k = 10 -> 5: every Script / MemP evaluation (base models, own bank and CD), the dev
    # evaluations (adapters are chosen under MemP+CD at k), so every selection and every evaluation
    # with a selected adapter. Not rerun: memory banks, embeddings, LoRA training, No Memory and
    # Trajectory base evaluations, and figure 3's k = 5 runs for Qwen3-14B, which already exist.
    changed = overlay(tmp_path, "k", {"memory": {"k": 5}})
    counts, _ = plan(*changed, workdir=done_paper)
    retrieving = STUDENTS * 4 + 2 - 2  # script/memp x self/cd; teacher own bank; minus figure 3's
    assert pipeline(counts) == dict.fromkeys(PIPELINE_RULES, 0) | {
        "select_adapter": LORA_MODELS, "select_strategy_adapter": 2,
        "evaluate": retrieving + DEV_EVALS + LORA_EVALS, "engine": ENGINES,
    }
    assert {"table1", "table3", "table9"} <= set(counts)  # table 3 reports k (a parameter)
    assert "table6" not in counts


def test_one_thinking_flag_reruns_only_that_students_jobs(done_paper, tmp_path):
    # Qwen3-8B thinking off -> on: its evaluations (6 base, 12 dev, 6 with its selected adapter),
    # its own memory bank and embeddings, its LoRA grid and its selection; no other model's job.
    changed = overlay(tmp_path, "thinking", {"models": {"qwen3-8b": {"thinking": True}}})
    counts, _ = plan(*changed, workdir=done_paper)
    assert pipeline(counts) == dict.fromkeys(PIPELINE_RULES, 0) | {
        "extract_memories": 1, "embed_memories": 1, "train_lora": GRID, "select_adapter": 1,
        "evaluate": MEMORIES + GRID + MEMORIES, "engine": 2,  # its test and dev engines
    }
    jobs = planned_jobs(snakemake("-n", "--cores", "4", *changed, "-q", "reason", workdir=done_paper).stdout)
    models = {wildcards.get("model") for rule, wildcards in jobs if rule in PIPELINE_RULES}
    assert models == {"qwen3-8b"}, models
