rule evaluate:
    input:
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
        "../envs/duomem-cpu.yaml"
    threads: config["generation"]["threads"]
    resources:
        gpu=model_gpus,
        mem_mb=lambda w: MODELS[w.model].get("mem_mb", 8000),
        runtime=config["runtime_minutes"]["eval"],
    params:
        backend=model_value("backend"),
        path=model_value("path", ""),
        base_url=model_value("base_url", ""),
        served_name=model_value("served_name", ""),
        api_key_env=model_value("api_key_env", "OPENAI_API_KEY"),
        concurrency=model_value("concurrency", 8),
        thinking=model_value("thinking"),
        max_new_tokens=generation_value("max_new_tokens"),
        temperature=config["generation"]["temperature"],
        batch_size=config["generation"]["batch_size"],
        num_envs=config["generation"]["num_envs"],
        max_steps=config["max_steps"],
        seed=config["seed"],
        alfworld_data=config["alfworld_data"],
    script:
        "../scripts/evaluate.py"
