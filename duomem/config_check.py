"""Config checks. Every failure is ONE line naming the key and what is allowed:

1. duplicate keys inside one config file (PyYAML silently keeps the last one);
2. the schema (`schemas/config.schema.yaml`), checked here with jsonschema so the message is one
   line instead of jsonschema's multi-line report; Snakemake's `validate` then fills the defaults;
3. the cross-key checks the schema cannot express (models that exist, endpoints, paths, k).

The Snakefile calls `check_or_exit` before any rule is defined, so no job ever runs on a bad config.
"""

import re
import sys
from pathlib import Path

import yaml

from .errors import ConfigError
from .memory_config import parse_label

TRAIN_TASK_TYPES = 6  # ALFWorld's six task types (duomem.data.TASK_TYPES)
FULL_TRAIN_TASKS = 3553  # duomem.data.FULL_COUNTS["train"]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_KINDS = {str: "text", bool: "true/false", int: "an integer", float: "a number", list: "a list",
          dict: "a mapping", type(None): "empty"}
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks
_LOOPBACK_URL = re.compile(r"https?://(localhost|127(\.\d+){3}|\[::1\]|0\.0\.0\.0)(:\d+)?(/|$)", re.IGNORECASE)


def _fail(key, problem, allowed):
    raise ConfigError(f"config key `{key}`: {problem}; allowed: {allowed}")


def key_name(path):
    """models.x.path, lora.lrs[0]: the key as a user finds it in the YAML file."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# ---- 1. duplicate keys ----

def check_duplicate_keys(text, source="config"):
    """Reject a mapping that names a key twice (PyYAML would keep the last value without a word)."""

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key != "<<":
                    here = path + [key]
                    if key in seen:
                        _fail(key_name(here), f"defined twice in {source} (lines {seen[key]} and "
                              f"{key_node.start_mark.line + 1}); PyYAML would silently keep the last one",
                              "each key once per file")
                    seen[key] = key_node.start_mark.line + 1
                    walk(value_node, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + [i])

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), [])
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {source} is not valid YAML: {' '.join(str(e).split())}") from None


# ---- 2. the schema, one line per error ----

def _value(v):
    return str(v).lower() if isinstance(v, bool) else str(v)


def describe(schema):
    """What a schema fragment allows, in a few words."""
    if "enum" in schema:
        return ", ".join(_value(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. [integer, "null"]: a value, or null for the default
        text = " or ".join(describe({**schema, "type": k}) for k in kind if k != "null")
        return text + (" (null: the default)" if "null" in kind else "")
    if kind == "array":
        text = f"a list of {describe(schema.get('items', {}))}"
        if schema.get("minItems"):
            text += f" (at least {schema['minItems']})"
        return text + (", each once" if schema.get("uniqueItems") else "")
    if kind == "object" and "properties" in schema:
        return "a mapping with keys " + ", ".join(schema["properties"])
    words = {"integer": "an integer", "number": "a number", "string": "text", "boolean": "true or false",
             "object": "a mapping"}
    text = words.get(kind, "a value")
    bounds = [f"{op} {_value(schema[k])}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                        ("maximum", "<="), ("exclusiveMaximum", "<"))
              if k in schema]
    if bounds:
        text += " " + " and ".join(bounds)
    if "pattern" in schema:
        text += f" matching {schema['pattern']}"
    return text


def _schema_problem(error):
    """(key, problem, allowed) for one jsonschema error."""
    path, schema, instance = list(error.absolute_path), error.schema, error.instance
    v = error.validator
    if v == "additionalProperties":
        known = schema.get("properties", {})
        extra = sorted(k for k in instance if k not in known)
        return key_name(path + [extra[0]]), "unknown key", ", ".join(known)
    if v == "required":
        missing = next(k for k in error.validator_value if k not in instance)
        sub = schema.get("properties", {}).get(missing, {})
        return key_name(path + [missing]), "missing", describe(sub) if sub else "see the schema"
    if v == "propertyNames":
        bad = next(k for k in instance if not re.search(schema["propertyNames"]["pattern"], k))
        return key_name(path + [bad]), f"{bad!r} is not a valid name", describe(schema["propertyNames"])
    if v == "minProperties":
        return key_name(path), f"needs at least {error.validator_value} entries", describe(schema)
    problem = f"{instance!r} is not allowed"
    if v == "type":
        problem = f"{instance!r} is {_KINDS.get(type(instance), 'of another type')}"
        if isinstance(instance, str) and _FLOAT_TEXT.fullmatch(instance.strip()):
            mantissa, exponent = instance.strip().lower().split("e")
            fixed = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}"
            problem += f" (YAML reads {instance} as text; write {fixed})"
    elif v == "uniqueItems":
        problem = "a value is listed twice"
    elif v == "minItems":
        problem = "the list is too short"
    return key_name(path), problem, describe(schema)


def check_schema(config, schema):
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        _fail(*_schema_problem(error))


# ---- 3. cross-key checks ----

def _check_model_path(key, path):
    """A local folder must exist; a hub id (org/name) or a folder the pipeline builds need not."""
    if path.startswith("results/") or Path(path).expanduser().exists():
        return
    local = path.startswith(("/", "./", "../", "~")) or path.count("/") > 1
    if local or not (_HUB_ID.fullmatch(path) or "/" not in path):
        _fail(key, f"{path!r} does not exist and is not a hub id",
              "a hub id (org/name), an existing local folder, or results/models/<name> built by the pipeline")


def _tokenizer_folder(path):
    """Where a model's tokenizer lies on this machine: a local folder, or a hub id's snapshot in the
    local Hugging Face cache; None when it is not here (a hub id not downloaded yet)."""
    import os

    if Path(path).expanduser().is_dir():
        return Path(path).expanduser()
    if not _HUB_ID.fullmatch(path):
        return None
    hub = os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub"
    snapshots = sorted((Path(hub).expanduser() / f"models--{path.replace('/', '--')}" / "snapshots").glob("*"))
    return snapshots[-1] if snapshots else None


def _check_sft_template(key, model):
    """A LoRA student whose chat template the SFT builder cannot cut loss masks from fails here,
    before any job (duomem.sft.check_template). Checked where the tokenizer is on disk; a model not
    here yet is checked by its first training job. A passed check is remembered (by the template
    files' contents) in .snakemake/, so later runs do not load the tokenizer again."""
    import hashlib
    import json

    folder = _tokenizer_folder(model.get("path", ""))
    files = [f for f in ("tokenizer_config.json", "chat_template.jinja") if folder and (folder / f).exists()]
    if not files:
        return
    from .policies import template_kwargs

    kwargs = template_kwargs(model.get("thinking"))
    digest = hashlib.sha256(json.dumps(kwargs).encode())
    for f in files:
        digest.update((folder / f).read_bytes())
    stamp = Path(".snakemake", "duomem-template-ok", digest.hexdigest()[:20])
    if stamp.exists():
        return
    from transformers import AutoTokenizer

    from .sft import TemplateError, check_template

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception:  # noqa: BLE001 - an unreadable tokenizer is its training job's error to report
        return
    try:
        check_template(tokenizer, kwargs)
    except TemplateError as e:
        _fail(key, f"the SFT builder cannot cut loss masks from this model's chat template with {kwargs or 'no'} "
              f"template arguments ({e})", "a LoRA student whose template renders each assistant turn after its "
              "generation prompt (a thinking-mode student cannot be trained on actions without thinking)")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()


def max_bank_size(config):
    """An upper bound on the teacher's memory bank: one script per solved (train task, attempt)."""
    per_type = config.get("data", {}).get("subset_per_task_type", {}).get("train", 0)
    tasks = per_type * TRAIN_TASK_TYPES if per_type else FULL_TRAIN_TASKS
    return tasks * config.get("teacher_collection", {}).get("attempts", 3), tasks


def check_cluster_endpoints(config):
    """Jobs on a cluster executor (SLURM) run on other machines, where a loopback endpoint of this
    one is not reachable: an `openai` model needs a `serve` command (its server inside each job) or
    a URL the nodes reach."""
    for name, m in config["models"].items():
        if m["backend"] == "openai" and not m.get("serve") and _LOOPBACK_URL.match(m.get("base_url", "")):
            _fail(f"models.{name}.base_url", f"{m['base_url']!r} is the machine each job runs on, and the "
                  "jobs run on cluster nodes where no server listens there", "a `serve` command that starts "
                  "the server inside each job (with `gpus` for it), or a URL of a server the nodes reach")


def check_config(config):
    models = config["models"]
    names = ", ".join(sorted(models))
    if config["teacher"] not in models:
        _fail("teacher", f"{config['teacher']!r} is not a key of `models`", names)
    collector = config.get("teacher_collection", {}).get("collector")
    if collector is not None and collector not in models:
        _fail("teacher_collection.collector", f"{collector!r} is not a key of `models`", names)
    for s in config["students"]:
        if s not in models:
            _fail("students", f"{s!r} is not a key of `models`", names)
    for name, m in models.items():
        key = f"models.{name}"
        if m["backend"] in ("hf", "vllm") and not m.get("path"):
            _fail(f"{key}.path", f"the {m['backend']} backend needs a model path", "a hub id or a local folder")
        if m["backend"] in ("hf", "vllm"):
            _check_model_path(f"{key}.path", m["path"])
        if m["backend"] == "openai" and not m.get("base_url") and not m.get("serve"):
            _fail(f"{key}.base_url", "the openai backend needs an endpoint URL",
                  "an http(s):// URL such as http://localhost:8000/v1 (or a `serve` command that starts one)")
        if m["backend"] == "openai" and m.get("base_url") and not m["base_url"].startswith(("http://", "https://")):
            _fail(f"{key}.base_url", f"{m['base_url']!r} is not a URL", "an http(s):// URL")
        if "thinking" in m and "qwen3" not in (name + m.get("path", "")).lower():
            _fail(f"{key}.thinking", "only Qwen3 hybrid models have a thinking mode", "remove the key for this model")
        if "search" in m and m["backend"] != "expert":
            _fail(f"{key}.search", "only the expert backend has a search order", "remove the key for this model")
        if m["backend"] == "expert" and name in config["students"]:
            _fail("students", f"{name!r} is the oracle expert, which cannot be a student", "hf, vllm or openai models")
    memory = config.get("memory", {})
    for m in memory.get("k_ablation_models", []):
        if m not in models:
            _fail("memory.k_ablation_models", f"{m!r} is not a key of `models`", names)
    if memory.get("token_counter"):
        _check_model_path("memory.token_counter", memory["token_counter"])
    # The bank's size is known only after collection; a k above its upper bound can never work.
    # (A bank smaller than k after collection stops the evaluation with the same kind of message.)
    bound, tasks = max_bank_size(config)
    for key, ks in (("memory.k", [memory.get("k", 10)]), ("memory.k_ablation", memory.get("k_ablation", []))):
        for k in ks:
            if k > bound:
                _fail(key, f"k={k} exceeds the largest possible memory bank ({tasks} train tasks x "
                      f"{bound // tasks} attempts = {bound} scripts)", f"1 to {bound}")
    lora = config.get("lora", {})
    for key in ("models", "strategy_models"):
        for m in lora.get(key, []):
            if m not in config["students"]:
                _fail(f"lora.{key}", f"{m!r} is not a student", ", ".join(config["students"]))
            if models[m]["backend"] not in ("hf", "vllm", "openai"):
                _fail(f"lora.{key}", f"{m!r} uses the {models[m]['backend']} backend, which takes no adapter",
                      "students with backend hf, vllm or openai")
    # vllm serves the adapters itself: its engine must admit the largest rank (vLLM's rank sizes).
    lora_vllm = [m for k in ("models", "strategy_models") for m in lora.get(k, []) if models[m]["backend"] == "vllm"]
    max_rank = config.get("vllm", {}).get("max_lora_rank", 32)
    if lora_vllm and max_rank < max(lora.get("ranks", [0])):
        _fail("vllm.max_lora_rank", f"{max_rank} is below the largest lora.ranks value {max(lora['ranks'])} "
              f"(vllm students {', '.join(lora_vllm)})", f"a value >= {max(lora['ranks'])}")
    if lora_vllm and max_rank not in VLLM_LORA_RANKS:
        _fail("vllm.max_lora_rank", f"{max_rank} is not a size vLLM accepts", ", ".join(map(str, VLLM_LORA_RANKS)))
    if lora.get("strategy_models") and lora.get("strategy") not in lora.get("strategies", []):
        _fail("lora.strategies", f"the main strategy {lora.get('strategy')!r} is missing", "a list holding it")
    if lora.get("with_reference") and lora.get("sft_memory", ["none"]) != ["none"]:
        _fail("lora.with_reference", "lora.sft_memory already lays out the SFT prompts with memory",
              "false (put `trajectory` in lora.sft_memory for prompts with the reference trajectory)")
    for label in lora.get("sft_memory", []):
        k = parse_label(label)[2]
        if k is not None and k > bound:
            _fail("lora.sft_memory", f"{label}: k={k} exceeds the largest possible memory bank ({bound} scripts)",
                  f"k from 1 to {bound}")
    if lora.get("eval_memories") is not None and lora.get("models"):
        from .plan import Plan

        plan = Plan(config)
        for m in lora["models"]:
            offered = plan.memory_labels(m)
            for label in lora["eval_memories"]:
                if label not in offered:
                    _fail("lora.eval_memories", f"{label!r} is not among the memory configurations {m!r} is evaluated "
                          "with (evaluation.memory x evaluation.cd, memory.k)", ", ".join(offered))
    for m in dict.fromkeys(lora.get("models", []) + lora.get("strategy_models", [])):
        if models[m]["backend"] in ("hf", "vllm"):
            _check_sft_template(f"models.{m}.thinking" if "thinking" in models[m] else f"models.{m}.path", models[m])
    return config


def check_all(config, configfiles, schema_path):
    """Duplicate keys in each config file, the schema, defaults filled in (Snakemake's validate),
    then the cross-key checks."""
    for f in configfiles:
        try:
            text = Path(f).read_text()
        except OSError:
            continue  # Snakemake itself reports a config file it cannot read
        check_duplicate_keys(text, str(f))
    schema = yaml.safe_load(Path(schema_path).read_text())
    check_schema(config, schema)
    from snakemake.utils import validate

    validate(config, str(schema_path))  # fills the defaults; the config already passed the schema
    check_config(config)
    return config


def check_or_exit(config, configfiles, schema_path=None, cluster=False):
    """`check_all` (or with `cluster`, only `check_cluster_endpoints`), or exit 1 with the one-line
    message (no traceback: nothing ran yet)."""
    try:
        if cluster:
            return check_cluster_endpoints(config)
        return check_all(config, configfiles, schema_path)
    except ConfigError as e:
        sys.exit(f"duomem config error: {e}")
