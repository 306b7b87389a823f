from duomem.cli import run
from duomem.figures import success_by_type


def main(sm):
    success_by_type(sm.input.table, sm.output.png, sm.output.pdf)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
