rule manifest:
    output:
        "results/data/{split}.jsonl",
    log:
        "results/logs/data/{split}.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        alfworld_data=config["alfworld_data"],
        per_task_type=lambda w: config["data"]["subset_per_task_type"][w.split],
        expect_full=config["data"]["expect_full"],
        seed=config["seed"],
    script:
        "../scripts/build_manifest.py"
