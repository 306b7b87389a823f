# Paper tables: each rule reads exactly the evaluation outputs its table needs. The Δ columns are
# tested on the per-episode records, so those tables declare episodes.jsonl as well as summary.csv.


rule table1:
    input:
        summaries=PLAN.table_summaries("table1"),
        episodes=episodes_of(PLAN.table_summaries("table1")),
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
        columns=PLAN.table1_columns(),
        models=PLAN.evaluated_models(),
        teacher=TEACHER,
    script:
        "../scripts/table1.py"


rule table2:
    input:
        summaries=PLAN.table_summaries("table2"),
        selections=PLAN.selections(),
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
        columns=PLAN.table1_columns(),
        models=PLAN.evaluated_models(),
        lora_models=PLAN.lora["models"],
    script:
        "../scripts/table2.py"


rule table3:
    input:
        banks=[f"results/memory/{b}/memories.json" for b in PLAN.memory_banks()],
        references=PLAN.references,
        token_counter=pipeline_path(config["memory"]["token_counter"]),
        selections=PLAN.selections(),
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
        names=PLAN.memory_banks(),
        k=PLAN.k,
        token_counter=token_counter_param,
    script:
        "../scripts/table3.py"


rule table4:
    input:
        summaries=PLAN.table_summaries("table4"),
        episodes=episodes_of(PLAN.table_summaries("table4")),
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
        rows=PLAN.table4_rows(),
    script:
        "../scripts/table4.py"


rule table5:
    input:
        summaries=PLAN.table_summaries("table5"),
        episodes=episodes_of(PLAN.table_summaries("table5")),
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
        rows=PLAN.table5_rows(),
        main_strategy=PLAN.main_strategy,
    script:
        "../scripts/table5.py"


rule table6:
    input:
        stats=f"results/trajectories/{COLLECTOR}/stats.json",
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
        teacher=COLLECTOR,
    script:
        "../scripts/table6.py"


rule table7:
    input:
        summaries=PLAN.table_summaries("table7"),
        episodes=episodes_of(PLAN.table_summaries("table7")),
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
        rows=PLAN.table7_rows(),
    script:
        "../scripts/table7.py"


rule table8:
    input:
        summaries=PLAN.table_summaries("table8"),
        selections=PLAN.selections(),
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
        rows=PLAN.table8_rows(),
        lora_models=PLAN.lora["models"],
    script:
        "../scripts/table8.py"


rule table9:
    input:
        summaries=PLAN.table_summaries("table9"),
        episodes=episodes_of(PLAN.table_summaries("table9")),
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
        pairs=PLAN.table9_pairs(),
    script:
        "../scripts/table9.py"


rule table10:
    input:
        summaries=PLAN.table_summaries("table10"),
        episodes=episodes_of(PLAN.table_summaries("table10")),
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
        rows=PLAN.table10_rows(),
    script:
        "../scripts/table10.py"


rule paper_comparison:
    input:
        summaries=PLAN.table_summaries("paper_comparison"),
        episodes=episodes_of(PLAN.table_summaries("paper_comparison")),
        paper=PLAN.paper_numbers,
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
        rows=PLAN.paper_comparison_rows(),
        models=PLAN.evaluated_models(),
    script:
        "../scripts/paper_comparison.py"
