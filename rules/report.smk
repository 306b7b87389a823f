# The trajectory viewer: one self-contained HTML page per evaluation, linked from the report.


rule viewer:
    input:
        unpack(memory_inputs),
        episodes=f"{EVAL}/episodes.jsonl",
        provenance=f"{EVAL}/provenance.json",
    output:
        report(
            "results/viewer/{split}/{model}/{adapter}/{memory}.html",
            caption="../report/viewer.rst",
            category="Trajectories",
            subcategory="{model}",
            labels={"split": "{split}", "adapter": "{adapter}", "memory": "{memory}"},
        ),
    log:
        "results/logs/viewer/{split}/{model}/{adapter}/{memory}.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        system_prompt_sha=sha(SYSTEM_PROMPT),
    script:
        "../scripts/viewer.py"
