rule table1:
    input:
        summaries=[p for paths in table1_columns().values() for p in paths if p],
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
        columns=table1_columns(),
        models=evaluated_models(),
        teacher=TEACHER,
    script:
        "../scripts/tables.py"


rule table3:
    input:
        banks=[f"results/memory/{b}/memories.json" for b in memory_banks()],
        references=REFERENCES,
        token_counter=pipeline_path(config["memory"]["token_counter"]),
        selections=[selection_file(m, MAIN_STRATEGY) for m in LORA["models"]],
    output:
        csv="results/table3.csv",
        md="results/table3.md",
    log:
        "results/logs/tables/table3.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        names=memory_banks(),
        k=K,
        token_counter=token_counter_param,
    script:
        "../scripts/tables.py"


rule table6:
    input:
        stats=f"results/trajectories/{TEACHER}/stats.json",
    output:
        csv="results/table6.csv",
        md="results/table6.md",
    log:
        "results/logs/tables/table6.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        teacher=TEACHER,
    script:
        "../scripts/tables.py"


rule table9:
    input:
        summaries=[p for pair in table9_pairs() for p in pair[2:]],
    output:
        csv="results/table9.csv",
        md="results/table9.md",
    log:
        "results/logs/tables/table9.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        pairs=table9_pairs(),
    script:
        "../scripts/tables.py"


rule table2:
    input:
        summaries=[p for paths in table1_columns().values() for p in paths if p],
        selections=[selection_file(m, MAIN_STRATEGY) for m in LORA["models"]],
    output:
        csv="results/table2.csv",
        md="results/table2.md",
    log:
        "results/logs/tables/table2.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        columns=table1_columns(),
        models=evaluated_models(),
        lora_models=LORA["models"],
    script:
        "../scripts/tables.py"


rule table4:
    input:
        summaries=[p for row in table4_rows() for p in row[2:]],
    output:
        csv="results/table4.csv",
        md="results/table4.md",
    log:
        "results/logs/tables/table4.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=table4_rows(),
    script:
        "../scripts/tables.py"


rule table5:
    input:
        summaries=[row[3] for row in table5_rows()],
    output:
        csv="results/table5.csv",
        md="results/table5.md",
    log:
        "results/logs/tables/table5.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=table5_rows(),
    script:
        "../scripts/tables.py"


rule table8:
    input:
        summaries=[row[2] for row in table8_rows()],
        selections=[selection_file(m, MAIN_STRATEGY) for m in LORA["models"]],
    output:
        csv="results/table8.csv",
        md="results/table8.md",
    log:
        "results/logs/tables/table8.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=table8_rows(),
        lora_models=LORA["models"],
    script:
        "../scripts/tables.py"
