from duomem.cli import run
from duomem.model_tables import table10


def main(sm):
    table10(sm.params.rows, sm.output.csv, sm.output.md)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
