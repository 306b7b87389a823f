from duomem.cli import run
from duomem.collect import collect
from duomem.env import expert_mode
from duomem.policies import policy_from_params
from duomem.serving import endpoint, result_params


def main(sm):
    p = dict(sm.params)
    with endpoint(p, sm.log[0]) as live:  # starts the model's `serve` command when it has one
        collect(sm.input.manifest, sm.output.trajectories, sm.output.stats,
                lambda: policy_from_params(live(), threads=sm.threads), attempts=p["attempts"],
                retries=p["retries"], max_steps=p["max_steps"], seed=p["seed"],
                temperature=p["collect_temperature"], greedy_first=p["greedy_first"], num_envs=p["num_envs"],
                alfworld_data=p["alfworld_data"], run_params={"model": sm.wildcards.model, **result_params(p)},
                expert=expert_mode(p["backend"], p["expert_search"]), mistake_rate=p["mistake_rate"])


# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
