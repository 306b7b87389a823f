rule evaluate:
    input:
        unpack(memory_inputs),
        unpack(adapter_inputs),
        unpack(engine_inputs),
        manifest="results/data/{split}.jsonl",
        model=built_model_input,
    output:
        episodes=f"{EVAL}/episodes.jsonl",
        summary=f"{EVAL}/summary.csv",
        provenance=f"{EVAL}/provenance.json",
    log:
        "results/logs/eval/{split}/{model}/{adapter}/{memory}.log",
    benchmark:
        "results/benchmarks/eval/{split}/{model}/{adapter}/{memory}.tsv"
    conda:
        model_env
    threads: eval_threads
    resources:
        **EVAL_JOB_RESOURCES,
        gpu=eval_gpus,
        mem_mb=eval_mem_mb,
        runtime=config["runtime_minutes"]["eval"],
    params:
        **POLICY_PARAMS,
        max_new_tokens=generation_value("max_new_tokens"),
        num_envs=config["generation"]["num_envs"],
        max_steps=config["max_steps"],
        alfworld_data=config["alfworld_data"],
        system_prompt_sha=sha(SYSTEM_PROMPT),
    script:
        "../scripts/evaluate.py"


# One engine for every evaluation of a model on a split (evaluation.share_engine): a service that
# Snakemake runs beside its consumers (the evaluate jobs with an `engine` input, one group job) and
# stops when the last of them ends. A shell job that execs Python: Snakemake stops a service by
# SIGTERM to the job's own process (a `script:` job it never stops), and gives it only
# --latency-wait seconds to create its file (touched at once; the address goes in once it answers).
rule engine:
    input:
        model=built_model_input,
    output:
        service(ENGINE),
    log:
        "results/logs/engines/{split}/{model}.log",
    conda:
        model_env
    threads: config["generation"]["threads"]
    resources:
        **GPU_JOB_RESOURCES,
        gpu=model_gpus,
        mem_mb=model_job_mem_mb,
        runtime=config["runtime_minutes"]["eval"],
    params:
        **ENGINE_PARAMS,
        python=PYTHON,
        settings=engine_settings,
    shell:
        "touch {output:q} && exec {params.python:q} -m duomem.engine {output:q} {log:q} {params.settings:q}"
