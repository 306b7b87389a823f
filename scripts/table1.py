from duomem.cli import run
from duomem.tables import table1


def main(sm):
    table1(sm.params.columns, sm.params.models, sm.params.teacher, sm.output.csv, sm.output.md)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
