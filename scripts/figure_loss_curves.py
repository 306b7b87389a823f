from duomem.cli import run
from duomem.figures import loss_curves


def main(sm):
    loss_curves(sm.params.runs, sm.output.png, sm.output.pdf)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
