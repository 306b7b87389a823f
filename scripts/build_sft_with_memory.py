from duomem.cli import run
from duomem.io import write_json_atomic
from duomem.sft_memory import build_memory_sft_dataset


def main(sm):
    inp = sm.input
    banks = {b: (inp[f"memories_{b}"], inp[f"bank_{b}"]) for b in ("self", "cd") if f"memories_{b}" in inp.keys()}
    summary = build_memory_sft_dataset(inp.trajectories, sm.output.sft, sm.wildcards.strategy, list(sm.params.labels),
                                       inp.get("reference"), banks)
    print(summary)
    write_json_atomic(sm.output.summary, summary)


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
