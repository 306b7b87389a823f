from duomem.cli import run
from duomem.figures import learning_curve_from_summaries


def main(sm):
    out = sm.output
    learning_curve_from_summaries(sm.params.rows, out.csv, out.png, out.pdf)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
