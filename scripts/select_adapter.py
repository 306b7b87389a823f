from duomem.cli import run
from duomem.selection import select_adapter


def main(sm):
    p = sm.params
    select_adapter(p.labels, sm.input.adapters, sm.input.summaries, sm.output[0], model=sm.wildcards.model,
                   strategy=p.strategy, split=p.split, memory=p.memory)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
