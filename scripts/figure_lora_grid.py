from duomem.cli import run
from duomem.figures import lora_grid


def main(sm):
    lora_grid(sm.input.table, sm.output.png, sm.output.pdf)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
