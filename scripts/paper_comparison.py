from duomem.cli import run
from duomem.paper import paper_comparison


def main(sm):
    paper_comparison(sm.params.rows, sm.params.models, sm.output.csv, sm.output.md, path=sm.input.paper)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
