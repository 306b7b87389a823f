from duomem.cli import run
from duomem.tables import table4


def main(sm):
    table4(sm.params.rows, sm.output.csv, sm.output.md)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
