rule extract_memories:
    input:
        trajectories=f"results/trajectories/{COLLECTOR}/train.jsonl",
        model=built_model_input,
        token_counter=pipeline_path(config["memory"]["token_counter"]),
    output:
        "results/memory/{model}/memories.json",
    log:
        "results/logs/memory/{model}.log",
    benchmark:
        "results/benchmarks/memory/{model}.tsv"
    conda:
        model_env
    threads: config["generation"]["threads"]
    resources:
        **GPU_JOB_RESOURCES,
        gpu=model_gpus,
        mem_mb=model_job_mem_mb,
        runtime=config["runtime_minutes"]["extract"],
    params:
        **POLICY_PARAMS,
        max_new_tokens=config["memory"]["extract_max_new_tokens"],
        model_max_new_tokens=thinking_only_budget,
        max_empty_scripts=config["memory"]["max_empty_scripts"],
        token_counter=token_counter_param,
        prompt_sha=sha(EXTRACT_SYSTEM + EXTRACT_INSTRUCTION),
    script:
        "../scripts/extract_memories.py"


rule embed_memories:
    input:
        "results/memory/{model}/memories.json",
    output:
        npy="results/memory/{model}/{embedder}/embeddings.npy",
        ids="results/memory/{model}/{embedder}/embeddings.ids.json",
    log:
        "results/logs/memory/{model}.{embedder}.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        base_url=config["memory"]["embedder_base_url"],
        api_key_env=config["memory"]["embedder_api_key_env"],
    script:
        "../scripts/embed.py"


rule embed_tasks:
    input:
        "results/data/{split}.jsonl",
    output:
        npy="results/embeddings/{embedder}/{split}.npy",
        ids="results/embeddings/{embedder}/{split}.ids.json",
    log:
        "results/logs/embeddings/{embedder}.{split}.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        base_url=config["memory"]["embedder_base_url"],
        api_key_env=config["memory"]["embedder_api_key_env"],
    script:
        "../scripts/embed.py"
