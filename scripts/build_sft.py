from duomem.cli import run
from duomem.io import write_json_atomic
from duomem.sft import build_sft_dataset


def main(sm):
    p = dict(sm.params)
    summary = build_sft_dataset(sm.input.trajectories, sm.output.sft, p.get("strategy", sm.wildcards.get("strategy")),
                                with_reference=p.get("with_reference", False))
    print(summary)
    if "summary" in sm.output.keys():
        write_json_atomic(sm.output.summary, summary)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
