"""One script for every figure rule: the rule's name picks the library function."""

from duomem import figures
from duomem.cli import run


def main(sm):
    out = sm.output
    if sm.rule == "figure3":
        figures.figure3_from_summaries(sm.params.rows, out.csv, out.png, out.pdf)
    elif sm.rule == "figure_success_by_type":
        figures.success_by_type(sm.input.table, out.png, out.pdf)
    elif sm.rule == "figure_efficiency":
        figures.efficiency(sm.input.table, out.png, out.pdf)
    elif sm.rule == "figure_lora_grid":
        figures.lora_grid(sm.input.table, out.png, out.pdf)
    elif sm.rule == "figure_loss_curves":
        figures.loss_curves(sm.params.runs, out.png, out.pdf)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
