import re

from duomem.config_check import check_config

check_config(config)

MODELS = config["models"]
TEST_SPLIT = "valid_unseen"
DEV_SPLIT = "valid_seen"
EVAL = "results/eval/{split}/{model}/{adapter}/{memory}"


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    split="train|valid_seen|valid_unseen",
    adapter="base",
    memory="none",


def model_value(key, default=None):
    """A rule parameter that is one leaf of the wildcard model's config entry."""
    return lambda w: MODELS[w.model].get(key, default)


def generation_value(key):
    """A generation setting: the model's own value where it has one, else the global one."""
    return lambda w: MODELS[w.model].get(key, config["generation"][key])


def built_model_input(w):
    """The model folder, when the pipeline itself builds it (results/models/...)."""
    path = MODELS[w.model].get("path", "")
    return [path] if path.startswith("results/models/") else []


def model_gpus(w):
    backend = MODELS[w.model]["backend"]
    return MODELS[w.model].get("gpus", 1 if backend in ("hf", "vllm") else 0)


def evaluated_models():
    models = list(config["students"])
    if config["evaluation"]["teacher"] and config["teacher"] not in models:
        models.append(config["teacher"])
    return models


def eval_file(name, split, model, adapter="base", memory="none"):
    return f"{EVAL}/{name}".format(
        split=split, model=model, adapter=adapter, memory=memory
    )


def all_targets():
    targets = [f"results/data/{s}.jsonl" for s in config["evaluation"]["splits"]]
    for split in config["evaluation"]["splits"]:
        for model in evaluated_models():
            for memory in config["evaluation"]["memory"]:
                targets.append(eval_file("summary.csv", split, model, "base", memory))
    targets += ["results/table1.csv", "results/table1.md"]
    return targets
