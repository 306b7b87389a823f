from duomem.cli import run
from duomem.evaluate import evaluate
from duomem.policies import policy_from_params


def main(sm):
    p = dict(sm.params)
    out = sm.output
    evaluate(sm.input.manifest, out.episodes, out.summary, out.provenance,
             lambda: policy_from_params(p, threads=sm.threads), split=sm.wildcards.split,
             max_steps=p["max_steps"], seed=p["seed"], num_envs=p["num_envs"], alfworld_data=p["alfworld_data"],
             run_params={"model": sm.wildcards.model, "adapter": sm.wildcards.adapter,
                         "memory": sm.wildcards.memory, **p},
             expert=p["backend"] == "expert")


# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
