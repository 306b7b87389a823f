# Figures (PNG and PDF): figure 3 from its evaluations, the others from the tables they picture.


rule figure3:
    input:
        summaries=PLAN.table_summaries("figure3"),
    output:
        csv="results/figures/figure3.csv",
        png=report(
            "results/figures/figure3.png",
            caption="../report/figure3.rst",
            category="Figure 3",
        ),
        pdf="results/figures/figure3.pdf",
    log:
        "results/logs/figures/figure3.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        rows=PLAN.figure3_rows(),
    script:
        "../scripts/figure3.py"


rule figure_success_by_type:
    input:
        table="results/table7.csv",
    output:
        png=report(
            "results/figures/success_by_type.png",
            caption="../report/success_by_type.rst",
            category="Table 7",
        ),
        pdf="results/figures/success_by_type.pdf",
    log:
        "results/logs/figures/success_by_type.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_success_by_type.py"


rule figure_efficiency:
    input:
        table="results/table2.csv",
    output:
        png=report(
            "results/figures/efficiency.png",
            caption="../report/efficiency.rst",
            category="Table 2",
        ),
        pdf="results/figures/efficiency.pdf",
    log:
        "results/logs/figures/efficiency.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_efficiency.py"


rule figure_lora_grid:
    input:
        table="results/table8.csv",
    output:
        png=report(
            "results/figures/lora_grid.png",
            caption="../report/lora_grid.rst",
            category="Table 8",
        ),
        pdf="results/figures/lora_grid.pdf",
    log:
        "results/logs/figures/lora_grid.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/figure_lora_grid.py"


rule figure_loss_curves:
    input:
        adapters=[run[2] for run in PLAN.loss_curve_runs()],
    output:
        png=report(
            "results/figures/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Table 8",
        ),
        pdf="results/figures/loss_curves.pdf",
    log:
        "results/logs/figures/loss_curves.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        runs=PLAN.loss_curve_runs(),
    script:
        "../scripts/figure_loss_curves.py"


rule learning_curve:
    input:
        summaries=PLAN.table_summaries("learning_curve"),
        adapters=list(dict.fromkeys(row[4] for row in PLAN.learning_curve_rows())),
    output:
        csv="results/learning_curve.csv",
        png=report(
            "results/figures/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Learning curve",
        ),
        pdf="results/figures/learning_curve.pdf",
    log:
        "results/logs/figures/learning_curve.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        rows=PLAN.learning_curve_rows(),
    script:
        "../scripts/figure_learning_curve.py"
