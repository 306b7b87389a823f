rule table1:
    input:
        summaries=[eval_file("summary.csv", TEST_SPLIT, m) for m in evaluated_models()],
    output:
        csv="results/table1.csv",
        md="results/table1.md",
    log:
        "results/logs/tables/table1.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        models=evaluated_models(),
        teacher=config["teacher"],
    script:
        "../scripts/table1.py"
