from duomem.cli import run
from duomem.figures import efficiency


def main(sm):
    efficiency(sm.input.table, sm.output.png, sm.output.pdf)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
