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
)


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
