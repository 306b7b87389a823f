import hashlib
import json
import os
import re
import sys

from duomem.memory import EXTRACT_INSTRUCTION, EXTRACT_SYSTEM
from duomem.memory_config import LABEL_RE
from duomem.plan import DEV_SPLIT, ENGINE, EVAL, Plan, episodes_of, pipeline_path
from duomem.prompts import SYSTEM_PROMPT
from duomem.selection import ADAPTER_RE
from snakemake_interface_executor_plugins.settings import DeploymentMethod

# The design (which evaluations, tables and figures exist, and what each reads) is duomem.plan,
# tested on its own. This file connects rules to it: wildcards to its arguments, the parameters of
# the model behind a job, and where a job runs. The Snakefile has already checked the config.
PLAN = Plan(config)
MODELS = config["models"]
TEACHER = PLAN.teacher
# whose train-game trajectories feed the memory banks and the SFT data
COLLECTOR = PLAN.collector
SELECT_MEMORY = PLAN.select_memory


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
        return m.get(key, config["vllm"].get(key))

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
    expert_search=model_value("search"),
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
    enforce_eager=vllm_value("enforce_eager"),
    block_size=vllm_value("block_size"),
    ngram_speculative_tokens=vllm_value("ngram_speculative_tokens"),
    merge_lora=vllm_value("merge_lora"),
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

# What a shared engine (the engine rule) starts from - the model, its serve command or vllm settings.
ENGINE_PARAMS = {
    k: POLICY_PARAMS[k]
    for k in (
        "backend",
        "path",
        "api_key_env",
        "serve",
        "serve_timeout",
        "seed",
        "tensor_parallel_size",
        "max_model_len",
        "gpu_memory_utilization",
        "max_lora_rank",
        "max_loras",
        "enable_prefix_caching",
        "vllm_dtype",
        "enforce_eager",
        "block_size",
        "ngram_speculative_tokens",
    )
}
ENGINE_PARAMS["adapters"] = lambda w: PLAN.serves_adapters(w.model)
ENGINE_PARAMS["params_signature"] = params_signature(dict(ENGINE_PARAMS))

# The Python of a shell job: its conda environment's under --use-conda, else Snakemake's own.
PYTHON = (
    "python"
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else sys.executable
)


def engine_settings(w):
    """The engine's parameters as one JSON argument of its shell command (the engine rule)."""
    values = {k: v for k, v in ENGINE_PARAMS.items() if k != "params_signature"}
    return json.dumps({k: v(w) if callable(v) else v for k, v in values.items()})


def built_model_input(w):
    return PLAN.model_input(w.model)


def model_gpus(w):
    return PLAN.model_gpus(w.model)


def model_mem_mb(w):
    return MODELS[w.model].get("mem_mb", 8000)


def memory_inputs(w):
    return PLAN.memory_inputs(w.model, w.split, w.memory)


def adapter_inputs(w):
    return PLAN.adapter_inputs(w.model, w.adapter)


# ---- shared engines (evaluation.share_engine): one server per (split, model), a service job ----
#
# Snakemake reruns every consumer of a service that runs, and a service runs whenever one of its
# consumers does. Consumers therefore read the service file as ancient() input, and the file exists
# whenever the DAG is built (touched here; Snakemake deletes it when the service ends): a consumer
# with nothing changed stays done while another consumer of its engine reruns.
for _engine in PLAN.engines():
    os.makedirs(os.path.dirname(_engine), exist_ok=True)
    open(_engine, "a").close()


def engine_inputs(w):
    return {
        k: ancient(v)
        for k, v in PLAN.engine_inputs(w.model, w.split, w.adapter).items()
    }


def shares_engine(w):
    return PLAN.shares_engine(w.model, w.adapter)


def eval_gpus(w):
    """A shared engine's consumer holds no GPU: the engine job holds the model's."""
    return 0 if shares_engine(w) else model_gpus(w)


def eval_threads(w):
    """A consumer of a shared engine runs only its ALFWorld workers, which mostly wait on the model:
    no cores of its own (a service group holds all its jobs' threads at once; the engine's cover it).
    """
    return 0 if shares_engine(w) else config["generation"]["threads"]


def eval_mem_mb(w, attempt):
    """A consumer of a shared engine holds its ALFWorld workers (~350 MB each), not the model."""
    if not shares_engine(w):
        return model_job_mem_mb(w, attempt)
    return (config["generation"]["num_envs"] * 350 + 1000) * 2 ** (attempt - 1)


def eval_gpu_jobs(w):
    return 0 if shares_engine(w) else holds_gpus(w)


def selection_strategy(w):
    """select_adapter picks the main strategy's adapter; select_strategy_adapter names another."""
    return w.get("strategy", PLAN.main_strategy)


def selection_labels(w):
    return PLAN.grid_labels(selection_strategy(w))


def selection_inputs(w):
    return PLAN.selection_inputs(w.model, selection_strategy(w))


def all_targets():
    return PLAN.all_targets()


def token_counter_param(w, input):
    """The tokenizer for table 3's counts: the pipeline-built folder when it is one, else a hub id."""
    return (
        input.token_counter
        if input.token_counter
        else config["memory"]["token_counter"]
    )


# ---- where a job runs: conda environment, host memory, SLURM settings of GPU jobs (issue 5) ----

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
# an evaluation that uses a shared engine holds no GPU of its own
EVAL_JOB_RESOURCES = dict(GPU_JOB_RESOURCES, gpu_jobs=eval_gpu_jobs)
