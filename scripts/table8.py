from duomem.cli import run
from duomem.tables import table8


def main(sm):
    p = sm.params
    table8(p.rows, dict(zip(p.lora_models, sm.input.selections)), sm.output.csv, sm.output.md)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
