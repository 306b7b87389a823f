rule smollm2_from_gguf:
    output:
        directory("results/models/smollm2-135m-instruct"),
    log:
        "results/logs/models/smollm2-135m-instruct.log",
    benchmark:
        "results/benchmarks/models/smollm2-135m-instruct.tsv"
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/convert_gguf.py"


rule tiny_random_model:
    input:
        tokenizer="results/models/smollm2-135m-instruct",
    output:
        directory("results/models/tiny-random-smollm2"),
    log:
        "results/logs/models/tiny-random-smollm2.log",
    conda:
        "../envs/duomem-cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seed=config["seed"],
    script:
        "../scripts/tiny_random_model.py"
