rule collect_trajectories:
    input:
        manifest="results/data/train.jsonl",
        model=built_model_input,
    output:
        trajectories="results/trajectories/{model}/train.jsonl",
        stats="results/trajectories/{model}/stats.json",
    log:
        "results/logs/trajectories/{model}.log",
    benchmark:
        "results/benchmarks/trajectories/{model}.tsv"
    conda:
        model_env
    threads: config["generation"]["threads"]
    resources:
        **GPU_JOB_RESOURCES,
        gpu=model_gpus,
        mem_mb=model_job_mem_mb,
        runtime=config["runtime_minutes"]["collect"],
    params:
        **POLICY_PARAMS,
        max_new_tokens=generation_value("max_new_tokens"),
        attempts=config["teacher_collection"]["attempts"],
        retries=config["teacher_collection"]["retries"],
        collect_temperature=config["teacher_collection"]["temperature"],
        greedy_first=config["teacher_collection"]["greedy_first"],
        mistake_rate=config["teacher_collection"]["mistake_rate"],
        num_envs=config["generation"]["num_envs"],
        max_steps=config["teacher_collection"]["max_steps"] or config["max_steps"],
        alfworld_data=config["alfworld_data"],
        system_prompt_sha=sha(SYSTEM_PROMPT),
    script:
        "../scripts/collect_trajectories.py"
