from duomem.cli import run
from duomem.data import build_manifest, data_root
from duomem.io import write_jsonl_atomic


def main(sm):
    p = sm.params
    records = build_manifest(data_root(p.alfworld_data), sm.wildcards.split, per_task_type=p.per_task_type,
                             seed=p.seed, expect_full=p.expect_full)
    write_jsonl_atomic(sm.output[0], records)
    print(f"{len(records)} tasks in {sm.wildcards.split}")


# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
