from duomem.cli import run
from duomem.tables import table3


def main(sm):
    inp, p = sm.input, sm.params
    table3(p.names, inp.banks, inp.references, p.token_counter, p.k, sm.output.csv, sm.output.md,
           selections=list(inp.selections))


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
