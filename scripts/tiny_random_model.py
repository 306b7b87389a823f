from duomem.cli import run
from duomem.models import make_tiny_random

# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: make_tiny_random(snakemake.input.tokenizer, snakemake.output[0], seed=snakemake.params.seed),
        snakemake.log[0])
