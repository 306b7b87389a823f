from duomem.cli import run
from duomem.tables import table6


def main(sm):
    table6(sm.input.stats, sm.params.teacher, sm.output.csv, sm.output.md)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
