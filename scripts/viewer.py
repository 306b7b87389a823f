from duomem.cli import run
from duomem.viewer import build_viewer


def main(sm):
    inp, w = sm.input, sm.wildcards
    build_viewer(inp.episodes, sm.output[0], memory=w.memory, provenance=inp.provenance,
                 reference=inp.get("reference"), memories=inp.get("memories"), bank=inp.get("bank"),
                 queries=inp.get("queries"), title=f"{w.model} / {w.adapter} / {w.memory} on {w.split}")


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
