import hashlib
import re

from duomem.config_check import check_config
from duomem.lora import lr_label
from duomem.memory import EXTRACT_INSTRUCTION, EXTRACT_SYSTEM
from duomem.memory_config import LABEL_RE, make_label, parse_label
from duomem.prompts import SYSTEM_PROMPT
from duomem.references import reference_path
from duomem.selection import ADAPTER_RE, grid_label, parse_grid_label

check_config(config)

MODELS = config["models"]
TEACHER = config["teacher"]
TEST_SPLIT = "valid_unseen"
DEV_SPLIT = "valid_seen"
EMBEDDER = config["memory"]["embedder"]
K = config["memory"]["k"]
EVAL = "results/eval/{split}/{model}/{adapter}/{memory}"
REFERENCES = str(reference_path())
LORA = config["lora"]
MAIN_STRATEGY = LORA["strategy"]
SELECT_MEMORY = make_label(
    "memp", True, K
)  # adapters are chosen on dev under MemP+CD (paper §4)


def sha(text):
    """A short hash of a prompt: as a rule parameter it reruns the rule when the prompt changes."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    split="train|valid_seen|valid_unseen",
    adapter=ADAPTER_RE,
    strategy="full|latest|last5",
    rank="[1-9][0-9]*",
    lr="[0-9.]+e[-+][0-9]+",
    memory=LABEL_RE,
    embedder="minilm|openai-3-small",


def model_value(key, default=None):
    """A rule parameter that is one leaf of the wildcard model's config entry."""
    return lambda w: MODELS[w.model].get(key, default)


def vllm_value(key):
    """A vllm engine setting (the model's own value, else the `vllm:` section's); None for other
    backends, so changing an engine setting reruns only the vllm models' jobs."""

    def value(w):
        m = MODELS[w.model]
        if m["backend"] != "vllm":
            return None
        if key == "tensor_parallel_size" and key not in m and "gpus" in m:
            return max(1, m["gpus"])
        return m.get(key, config["vllm"][key])

    return value


def generation_value(key):
    """A generation setting: the model's own value where it has one, else the global one."""
    return lambda w: MODELS[w.model].get(key, config["generation"][key])


# The parameters that build a policy for the wildcard model (evaluation, collection, extraction).
POLICY_PARAMS = dict(
    backend=model_value("backend"),
    path=model_value("path", ""),
    base_url=model_value("base_url", ""),
    served_name=model_value("served_name", ""),
    api_key_env=model_value("api_key_env", "OPENAI_API_KEY"),
    concurrency=model_value("concurrency", 8),
    timeout=model_value("timeout", 120.0),
    max_retries=model_value("max_retries", 5),
    serve=model_value("serve", ""),
    serve_timeout=model_value("serve_timeout", 1800),
    thinking=model_value("thinking"),
    temperature=config["generation"]["temperature"],
    batch_size=config["generation"]["batch_size"],
    seed=config["seed"],
    tensor_parallel_size=vllm_value("tensor_parallel_size"),
    max_model_len=vllm_value("max_model_len"),
    gpu_memory_utilization=vllm_value("gpu_memory_utilization"),
    max_lora_rank=vllm_value("max_lora_rank"),
    max_loras=vllm_value("max_loras"),
    enable_prefix_caching=vllm_value("enable_prefix_caching"),
    vllm_dtype=vllm_value("dtype"),
    kv_dtype=lambda w: (
        config["generation"]["kv_dtype"] if MODELS[w.model]["backend"] == "hf" else None
    ),
)


def thinking_only_budget(w):
    """A thinking-only model's own max_new_tokens (its extraction budget adds the script's to it);
    None for other models, so the value reruns only their extraction jobs."""
    if MODELS[w.model].get("thinking") == "always":
        return generation_value("max_new_tokens")(w)
    return None


def params_signature(params):
    """A rule parameter that names every other parameter's value ("key=value;..."). Snakemake 9
    compares a job's parameters as a *set of values without names* (persistence.params_changed), so
    one parameter turning False goes unseen while another parameter of the job is False and a third
    still holds the old value. This one string changes whenever any named value does."""

    def signature(w):
        parts = []
        for key, value in sorted(params.items()):
            if callable(value):
                try:
                    value = value(w)
                except (
                    TypeError
                ):  # a function of the job's input files: their changes rerun it anyway
                    continue
            parts.append(f"{key}={value!r}")
        return ";".join(parts)

    return signature


POLICY_PARAMS["params_signature"] = params_signature(dict(POLICY_PARAMS))


def pipeline_path(path):
    """[path] when the pipeline itself builds it (results/...), else []: hub ids are not files."""
    return [path] if path.startswith("results/") else []


def built_model_input(w):
    return pipeline_path(MODELS[w.model].get("path", ""))


def model_gpus(w):
    backend = MODELS[w.model]["backend"]
    return MODELS[w.model].get("gpus", 1 if backend in ("hf", "vllm") else 0)


def model_mem_mb(w):
    return MODELS[w.model].get("mem_mb", 8000)


def evaluated_models():
    models = list(config["students"])
    if config["evaluation"]["teacher"] and TEACHER not in models:
        models.append(TEACHER)
    return models


def memory_labels(model, k=K):
    """The memory configurations `model` is evaluated with on the test split."""
    if MODELS[model]["backend"] == "expert":
        return ["none"]  # the oracle reads the environment's plan, not its prompt
    labels = []
    for kind in config["evaluation"]["memory"]:
        if kind in ("none", "trajectory"):
            labels.append(kind)
            continue
        for cd in config["evaluation"]["cd"]:
            if not (model == TEACHER and cd):  # the teacher's own bank is the CD bank
                labels.append(make_label(kind, cd, k))
    return labels


def k_ablation_labels():
    return [
        make_label(kind, True, k)
        for k in config["memory"]["k_ablation"]
        for kind in ("script", "memp")
    ]


def extractor_of(model, bank):
    return model if bank == "self" else TEACHER


def memory_inputs(w):
    """Reference trajectories and/or the memory bank, its embeddings and the task embeddings."""
    kind, bank, _ = parse_label(w.memory)
    inputs = {}
    if kind in ("trajectory", "memp"):
        inputs["reference"] = REFERENCES
    if kind in ("script", "memp"):
        extractor = extractor_of(w.model, bank)
        inputs["memories"] = f"results/memory/{extractor}/memories.json"
        inputs["bank"] = f"results/memory/{extractor}/{EMBEDDER}/embeddings.npy"
        inputs["queries"] = f"results/embeddings/{EMBEDDER}/{w.split}.npy"
    return inputs


def eval_file(name, split, model, adapter="base", memory="none"):
    return f"{EVAL}/{name}".format(
        split=split, model=model, adapter=adapter, memory=memory
    )


def eval_targets():
    targets = []
    for split in config["evaluation"]["splits"]:
        for model in evaluated_models():
            for memory in memory_labels(model):
                targets.append(eval_file("summary.csv", split, model, "base", memory))
    for model in config["memory"]["k_ablation_models"]:
        for memory in k_ablation_labels():
            targets.append(eval_file("summary.csv", TEST_SPLIT, model, "base", memory))
    return list(dict.fromkeys(targets))


def all_targets():
    targets = [f"results/data/{s}.jsonl" for s in config["evaluation"]["splits"]]
    targets += eval_targets()
    targets += lora_eval_targets()
    targets += [
        f"results/trajectories/{TEACHER}/train.jsonl",
        "results/table1.csv",
        "results/table3.csv",
        "results/table6.csv",
        "results/table9.csv",
    ]
    targets.append("results/table2.csv")
    if LORA["models"]:
        targets += ["results/table4.csv", "results/table8.csv"]
    if LORA["strategy_models"]:
        targets.append("results/table5.csv")
    targets += report_targets()
    return targets


def table1_columns():
    """Summary paths per table-1 column; None where a model has no such evaluation."""
    columns = {}
    wanted = {
        "no_memory": ("base", "none"),
        "memp": ("base", make_label("memp", False, K)),
        "memp_cd": ("base", make_label("memp", True, K)),
        "lora": ("lora", make_label("memp", False, K)),
        "duomem": ("lora", make_label("memp", True, K)),
    }
    for col, (adapter, label) in wanted.items():
        paths = [
            (
                eval_file("summary.csv", TEST_SPLIT, m, adapter, label)
                if label in memory_labels(m)
                and (adapter == "base" or m in LORA["models"])
                else None
            )
            for m in evaluated_models()
        ]
        if any(paths):
            columns[col] = paths
    return columns


def table9_pairs():
    pairs = []
    for model in config["students"]:
        for kind in ("memp", "script"):
            own, cd = make_label(kind, False, K), make_label(kind, True, K)
            if {own, cd} <= set(memory_labels(model)):
                pairs.append(
                    (
                        model,
                        kind,
                        eval_file("summary.csv", TEST_SPLIT, model, "base", own),
                        eval_file("summary.csv", TEST_SPLIT, model, "base", cd),
                    )
                )
    return pairs


def memory_banks():
    """Every memory bank the evaluations use: each student's own, and the teacher's."""
    banks = [TEACHER]
    if False in config["evaluation"]["cd"]:
        banks += [m for m in config["students"] if m != TEACHER]
    return banks


def token_counter_param(w, input):
    """The tokenizer for table 3's counts: the pipeline-built folder when it is one, else a hub id."""
    return (
        input.token_counter
        if input.token_counter
        else config["memory"]["token_counter"]
    )


# ---- parameter-space distillation: the LoRA grid, selection, adapter evaluations ----


def grid_labels(strategy):
    return [
        grid_label(strategy, r, lr_label(lr))
        for r in LORA["ranks"]
        for lr in LORA["lrs"]
    ]


def lora_dir(model, label):
    strategy, rank, lr = parse_grid_label(label)
    return f"results/lora/{model}/{strategy}/r{rank}_lr{lr}"


def selection_file(model, strategy):
    if strategy == MAIN_STRATEGY:
        return f"results/lora/{model}/selected.json"
    return f"results/lora/{model}/{strategy}/selected.json"


def adapter_label(strategy):
    return "lora" if strategy == MAIN_STRATEGY else f"lora-{strategy}"


def adapter_inputs(w):
    """The adapter folder of a grid label, or the selection record that names the chosen one."""
    if w.adapter == "base":
        return {}
    if w.adapter == "lora":
        return {"selected": selection_file(w.model, MAIN_STRATEGY)}
    if w.adapter.startswith("lora-"):
        return {"selected": selection_file(w.model, w.adapter[len("lora-") :])}
    return {"adapter": lora_dir(w.model, w.adapter)}


def selection_strategy(w):
    return w.get("strategy", MAIN_STRATEGY)


def selection_labels(w):
    return grid_labels(selection_strategy(w))


def selection_inputs(w):
    labels = selection_labels(w)
    return {
        "adapters": [lora_dir(w.model, l) for l in labels],
        "summaries": [
            eval_file("summary.csv", DEV_SPLIT, w.model, l, SELECT_MEMORY)
            for l in labels
        ],
    }


def lora_eval_targets():
    targets = []
    for model in LORA["models"]:
        for memory in memory_labels(model):
            targets.append(eval_file("summary.csv", TEST_SPLIT, model, "lora", memory))
    for model in LORA["strategy_models"]:
        for strategy in LORA["strategies"]:
            for memory in ("none", SELECT_MEMORY):
                label = adapter_label(strategy)
                targets.append(
                    eval_file("summary.csv", TEST_SPLIT, model, label, memory)
                )
    return targets


def table4_rows():
    """(model, memory, base summary, +LoRA summary) for every LoRA model's memory configuration."""
    return [
        (
            m,
            memory,
            eval_file("summary.csv", TEST_SPLIT, m, "base", memory),
            eval_file("summary.csv", TEST_SPLIT, m, "lora", memory),
        )
        for m in LORA["models"]
        for memory in memory_labels(m)
    ]


def table5_rows():
    return [
        (
            m,
            s,
            memory,
            eval_file("summary.csv", TEST_SPLIT, m, adapter_label(s), memory),
        )
        for m in LORA["strategy_models"]
        for s in LORA["strategies"]
        for memory in ("none", SELECT_MEMORY)
    ]


def table8_rows():
    return [
        (m, l, eval_file("summary.csv", DEV_SPLIT, m, l, SELECT_MEMORY))
        for m in LORA["models"]
        for l in grid_labels(MAIN_STRATEGY)
    ]


# ---- tables 7 and 10, figures, the paper comparison, the trajectory viewer (issue 7) ----

from pathlib import Path

from duomem.paper import matching_rows, paper_entries, paper_numbers_path

PAPER_NUMBERS = str(paper_numbers_path())


def episodes_of(summaries):
    """The episodes.jsonl beside each summary: paired tests read the per-task outcomes."""
    return [str(Path(p).with_name("episodes.jsonl")) for p in summaries if p]


def table7_rows():
    """(model, memory, summary) for every evaluated model and memory configuration, no adapter."""
    return [
        (m, memory, eval_file("summary.csv", TEST_SPLIT, m, "base", memory))
        for m in evaluated_models()
        for memory in memory_labels(m)
    ]


def thinking_pairs():
    """(non-thinking, thinking): two evaluated model entries of one `path`, thinking false and true."""
    models = evaluated_models()
    return [
        (a, b)
        for a in models
        for b in models
        if MODELS[a].get("path")
        and MODELS[a].get("path") == MODELS[b].get("path")
        and MODELS[a].get("thinking") is False
        and MODELS[b].get("thinking") is True
    ]


def table10_rows():
    return [
        (
            a,
            b,
            memory,
            eval_file("summary.csv", TEST_SPLIT, a, "base", memory),
            eval_file("summary.csv", TEST_SPLIT, b, "base", memory),
        )
        for a, b in thinking_pairs()
        for memory in memory_labels(a)
        if memory in memory_labels(b)
    ]


def figure3_rows():
    """(model, kind, k, summary): Script and MemP with CD at every k of the ablation and the main k."""
    ks = sorted(set(config["memory"]["k_ablation"]) | {K})
    return [
        (
            m,
            kind,
            k,
            eval_file("summary.csv", TEST_SPLIT, m, "base", make_label(kind, True, k)),
        )
        for m in config["memory"]["k_ablation_models"]
        for kind in ("script", "memp")
        for k in ks
    ]


def loss_curve_runs():
    """(model, grid label, adapter folder) of every adapter the configuration trains."""
    runs = [
        (m, l, lora_dir(m, l))
        for m in LORA["models"]
        for l in grid_labels(MAIN_STRATEGY)
    ]
    runs += [
        (m, l, lora_dir(m, l))
        for m in LORA["strategy_models"]
        for s in LORA["strategies"]
        for l in grid_labels(s)
    ]
    return list(dict.fromkeys(runs))


def paper_comparison_rows():
    """The paper's numbers whose setting this configuration evaluates anyway (duomem.paper)."""
    return matching_rows(
        paper_entries(PAPER_NUMBERS),
        MODELS,
        config["max_steps"],
        adapter_label,
        lambda m, a, l: eval_file("summary.csv", TEST_SPLIT, m, a, l),
        set(eval_targets() + lora_eval_targets()),
    )


def viewer_targets():
    """One trajectory viewer page per evaluation in `rule all` (dev grid evaluations excepted)."""
    return [
        f"results/viewer/{Path(p).parent.relative_to('results/eval')}.html"
        for p in dict.fromkeys(eval_targets() + lora_eval_targets())
    ]


def report_targets():
    """Tables 7/10, figures, the paper comparison and the viewers this configuration can fill."""
    targets = ["results/table7.csv", "results/paper_comparison.csv"]
    targets += [f"results/figures/{f}.png" for f in ("success_by_type", "efficiency")]
    if thinking_pairs():
        targets.append("results/table10.csv")
    if config["memory"]["k_ablation"] and config["memory"]["k_ablation_models"]:
        targets.append("results/figures/figure3.png")
    if LORA["models"]:
        targets.append("results/figures/lora_grid.png")
    if loss_curve_runs():
        targets.append("results/figures/loss_curves.png")
    return targets + viewer_targets()


# ---- where a job runs: conda environment, host memory, SLURM settings of GPU jobs (issue 5) ----

import os

# The environments' post-deploy scripts (envs/*.post-deploy.sh) install this checkout into them.
os.environ.update(DUOMEM_REPO=workflow.basedir)


def model_env(w):
    """The conda environment of a model job: the GPU stack (vLLM, CUDA torch) where
    the job holds GPUs, else the CPU stack (CPU configs, endpoint teacher, expert)."""
    return "../envs/duomem-gpu.yaml" if model_gpus(w) else "../envs/duomem-cpu.yaml"


def model_job_mem_mb(w, attempt):
    """The model's host memory, doubled on each retry: a job killed for memory gets more next time."""
    return model_mem_mb(w) * 2 ** (attempt - 1)


def gpu_job_setting(gpu_var, fallback_var=None):
    """A resource taken from the environment that depends on whether the job holds GPUs: $gpu_var
    (else $fallback_var) for jobs with GPUs, $fallback_var for the others, '' where unset. The SLURM
    profile's GPU partition and GPU type: a job without GPUs must not carry a GPU type (the plugin
    would submit --gpus=<type>:0), and only the rule knows the job's GPU count."""

    def value(w):
        names = [gpu_var, fallback_var] if model_gpus(w) else [fallback_var]
        return next((os.environ[n] for n in names if n and os.environ.get(n)), "")

    return value


def holds_gpus(w):
    """1 for a job that holds GPUs. profiles/local-gpu runs one such job at a time:
    Snakemake never sets CUDA_VISIBLE_DEVICES, so concurrent GPU jobs share a device."""
    return int(model_gpus(w) > 0)


GPU_JOB_RESOURCES = dict(
    slurm_partition=gpu_job_setting(
        "DUOMEM_SLURM_GPU_PARTITION", "DUOMEM_SLURM_PARTITION"
    ),
    gpu_model=gpu_job_setting("DUOMEM_GPU_MODEL"),
    gpu_jobs=holds_gpus,
)
