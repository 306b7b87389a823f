from duomem.cli import run
from duomem.tables import table5


def main(sm):
    table5(sm.params.rows, sm.output.csv, sm.output.md, main_strategy=sm.params.main_strategy)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
