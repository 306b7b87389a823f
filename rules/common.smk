import hashlib
import re

from duomem.config_check import check_config
from duomem.memory import EXTRACT_INSTRUCTION, EXTRACT_SYSTEM
from duomem.memory_config import LABEL_RE, make_label, parse_label
from duomem.prompts import SYSTEM_PROMPT
from duomem.references import reference_path

check_config(config)

MODELS = config["models"]
TEACHER = config["teacher"]
TEST_SPLIT = "valid_unseen"
DEV_SPLIT = "valid_seen"
EMBEDDER = config["memory"]["embedder"]
K = config["memory"]["k"]
EVAL = "results/eval/{split}/{model}/{adapter}/{memory}"
REFERENCES = str(reference_path())


def sha(text):
    """A short hash of a prompt: as a rule parameter it reruns the rule when the prompt changes."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    split="train|valid_seen|valid_unseen",
    adapter="base",
    memory=LABEL_RE,
    embedder="minilm|openai-3-small",


def model_value(key, default=None):
    """A rule parameter that is one leaf of the wildcard model's config entry."""
    return lambda w: MODELS[w.model].get(key, default)


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
    targets += [
        f"results/trajectories/{TEACHER}/train.jsonl",
        "results/table1.csv",
        "results/table3.csv",
        "results/table6.csv",
        "results/table9.csv",
    ]
    return targets


def table1_columns():
    """Summary paths per table-1 column; None where a model has no such evaluation."""
    columns = {}
    wanted = {
        "no_memory": "none",
        "memp": make_label("memp", False, K),
        "memp_cd": make_label("memp", True, K),
    }
    for col, label in wanted.items():
        paths = [
            (
                eval_file("summary.csv", TEST_SPLIT, m, "base", label)
                if label in memory_labels(m)
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
