rule build_sft:
    input:
        trajectories="results/trajectories/{model}/train.jsonl",
    output:
        sft="results/sft/{model}/{strategy}.jsonl",
        summary="results/sft/{model}/{strategy}.summary.json",
    log:
        "results/logs/sft/{model}/{strategy}.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        with_reference=config["lora"]["with_reference"],
        system_prompt_sha=sha(SYSTEM_PROMPT),
    script:
        "../scripts/build_sft.py"


# lora.sft_memory other than [none]: SFT prompts that carry memory, per model (its own bank may be
# one of them). The CPU default's choice, not the paper's (duomem.sft_memory).
rule build_sft_with_memory:
    input:
        unpack(lambda w: PLAN.sft_memory_inputs(w.model)),
    output:
        sft=f"results/sft/{COLLECTOR}/{{strategy}}.with-memory.{{model}}.jsonl",
        summary=f"results/sft/{COLLECTOR}/{{strategy}}.with-memory.{{model}}.summary.json",
    log:
        f"results/logs/sft/{COLLECTOR}/{{strategy}}.with-memory.{{model}}.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        labels=config["lora"]["sft_memory"],
        system_prompt_sha=sha(SYSTEM_PROMPT),
    script:
        "../scripts/build_sft_with_memory.py"


TRAIN_PARAMS = dict(
    path=model_value("path", ""),
    thinking=model_value("thinking"),
    epochs=config["lora"]["epochs"],
    seed=config["seed"],
    batch_size=config["lora"]["batch_size"],
    grad_accum=config["lora"]["grad_accum"],
    gradient_checkpointing=config["lora"]["gradient_checkpointing"],
    bf16=config["lora"]["bf16"],
    max_length=config["lora"]["max_length"],
    max_samples=config["lora"]["max_samples"] or None,
    checkpoint_steps=config["lora"]["checkpoint_steps"],
    logging_steps=config["lora"]["logging_steps"],
    modules=config["lora"]["modules"],
    dropout=config["lora"]["dropout"],
    top_layers=config["lora"]["top_layers"],
    prompt_grad=config["lora"]["prompt_grad"],
    scheduler=config["lora"]["scheduler"],
    curve=config["lora"]["curve"],
)
# Only for the schedule that uses it: under any other, neither its value nor its arrival in this
# version reruns an adapter (params_signature names every key).
if config["lora"]["scheduler"] == "warmup_stable_decay":
    TRAIN_PARAMS["decay_ratio"] = config["lora"]["decay_ratio"]


rule train_lora:
    input:
        sft=lambda w: PLAN.sft_path(w.model, w.strategy),
        model=built_model_input,
    output:
        directory("results/lora/{model}/{strategy}/r{rank}_lr{lr}"),
    log:
        "results/logs/lora/{model}/{strategy}/r{rank}_lr{lr}.log",
    benchmark:
        "results/benchmarks/lora/{model}/{strategy}/r{rank}_lr{lr}.tsv"
    conda:
        model_env
    threads: config["generation"]["threads"]
    resources:
        **GPU_JOB_RESOURCES,
        gpu=model_gpus,
        mem_mb=model_job_mem_mb,
        runtime=config["runtime_minutes"]["lora"],
    params:
        **TRAIN_PARAMS,
        params_signature=params_signature(TRAIN_PARAMS),
    script:
        "../scripts/train_lora.py"


# The main strategy's choice is the adapter of every +LoRA / DuoMem evaluation.
rule select_adapter:
    input:
        unpack(selection_inputs),
    output:
        "results/lora/{model}/selected.json",
    log:
        "results/logs/lora/{model}/selected.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        labels=selection_labels,
        strategy=selection_strategy,
        split=DEV_SPLIT,
        memory=SELECT_MEMORY,
    script:
        "../scripts/select_adapter.py"


use rule select_adapter as select_strategy_adapter with:
    output:
        "results/lora/{model}/{strategy}/selected.json",
    log:
        "results/logs/lora/{model}/{strategy}/selected.log",
