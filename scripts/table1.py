from duomem.cli import run
from duomem.tables import table1

# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: table1(snakemake.input.summaries, snakemake.params.models, snakemake.params.teacher,
                       snakemake.output.csv, snakemake.output.md), snakemake.log[0])
