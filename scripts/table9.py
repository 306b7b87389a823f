from duomem.cli import run
from duomem.tables import table9


def main(sm):
    table9(sm.params.pairs, sm.output.csv, sm.output.md)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
