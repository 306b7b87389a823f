from duomem.cli import run
from duomem.collect import collect
from duomem.policies import policy_from_params


def main(sm):
    p = dict(sm.params)
    collect(sm.input.manifest, sm.output.trajectories, sm.output.stats,
            lambda: policy_from_params(p, threads=sm.threads), attempts=p["attempts"], retries=p["retries"],
            max_steps=p["max_steps"], seed=p["seed"], num_envs=p["num_envs"], alfworld_data=p["alfworld_data"],
            run_params={"model": sm.wildcards.model, **p}, expert=p["backend"] == "expert")


# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
