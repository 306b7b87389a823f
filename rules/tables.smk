# Paper tables: each rule reads exactly the evaluation outputs its table needs. The Δ columns are
# tested on the per-episode records, so those tables declare episodes.jsonl as well as summary.csv.


rule table1:
    input:
        summaries=[p for paths in table1_columns().values() for p in paths if p],
        episodes=episodes_of(p for paths in table1_columns().values() for p in paths),
    output:
        csv=report(
            "results/table1.csv", caption="../report/table1.rst", category="Table 1"
        ),
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


rule table2:
    input:
        summaries=[p for paths in table1_columns().values() for p in paths if p],
        selections=[selection_file(m, MAIN_STRATEGY) for m in LORA["models"]],
    output:
        csv=report(
            "results/table2.csv", caption="../report/table2.rst", category="Table 2"
        ),
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


rule table3:
    input:
        banks=[f"results/memory/{b}/memories.json" for b in memory_banks()],
        references=REFERENCES,
        token_counter=pipeline_path(config["memory"]["token_counter"]),
        selections=[selection_file(m, MAIN_STRATEGY) for m in LORA["models"]],
    output:
        csv=report(
            "results/table3.csv", caption="../report/table3.rst", category="Table 3"
        ),
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


rule table4:
    input:
        summaries=[p for row in table4_rows() for p in row[2:]],
        episodes=episodes_of(p for row in table4_rows() for p in row[2:]),
    output:
        csv=report(
            "results/table4.csv", caption="../report/table4.rst", category="Table 4"
        ),
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
        episodes=episodes_of(row[3] for row in table5_rows()),
    output:
        csv=report(
            "results/table5.csv", caption="../report/table5.rst", category="Table 5"
        ),
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
        main_strategy=MAIN_STRATEGY,
    script:
        "../scripts/tables.py"


rule table6:
    input:
        stats=f"results/trajectories/{TEACHER}/stats.json",
    output:
        csv=report(
            "results/table6.csv", caption="../report/table6.rst", category="Table 6"
        ),
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


rule table7:
    input:
        summaries=[row[2] for row in table7_rows()],
        episodes=episodes_of(row[2] for row in table7_rows()),
    output:
        csv=report(
            "results/table7.csv", caption="../report/table7.rst", category="Table 7"
        ),
        md="results/table7.md",
    log:
        "results/logs/tables/table7.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=table7_rows(),
    script:
        "../scripts/tables.py"


rule table8:
    input:
        summaries=[row[2] for row in table8_rows()],
        selections=[selection_file(m, MAIN_STRATEGY) for m in LORA["models"]],
    output:
        csv=report(
            "results/table8.csv", caption="../report/table8.rst", category="Table 8"
        ),
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


rule table9:
    input:
        summaries=[p for pair in table9_pairs() for p in pair[2:]],
        episodes=episodes_of(p for pair in table9_pairs() for p in pair[2:]),
    output:
        csv=report(
            "results/table9.csv", caption="../report/table9.rst", category="Table 9"
        ),
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


rule table10:
    input:
        summaries=[p for row in table10_rows() for p in row[3:]],
        episodes=episodes_of(p for row in table10_rows() for p in row[3:]),
    output:
        csv=report(
            "results/table10.csv", caption="../report/table10.rst", category="Table 10"
        ),
        md="results/table10.md",
    log:
        "results/logs/tables/table10.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=table10_rows(),
    script:
        "../scripts/tables.py"


rule paper_comparison:
    input:
        summaries=[p for row in paper_comparison_rows() for p in row[7]],
        episodes=episodes_of(p for row in paper_comparison_rows() for p in row[7]),
        paper=PAPER_NUMBERS,
    output:
        csv=report(
            "results/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Paper comparison",
        ),
        md="results/paper_comparison.md",
    log:
        "results/logs/tables/paper_comparison.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        rows=paper_comparison_rows(),
        models=evaluated_models(),
    script:
        "../scripts/tables.py"
