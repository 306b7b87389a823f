from duomem.cli import run
from duomem.engine import policy_params
from duomem.env import expert_mode
from duomem.evaluate import evaluate_with_memory
from duomem.policies import policy_from_params
from duomem.selection import curve_adapter, selected_adapter
from duomem.serving import result_params


def main(sm):
    p = dict(sm.params)
    inp, out = sm.input, sm.output
    adapter, adapter_name = inp.get("adapter"), sm.wildcards.adapter
    if adapter:  # a learning-curve point lives inside its grid adapter's folder
        adapter = curve_adapter(adapter, adapter_name)
    if inp.get("selected"):
        adapter, adapter_name = selected_adapter(inp.selected)
    # the model's engine: the shared (split, model) service, else its own `serve` command or none
    with policy_params(p, sm.log[0], inp.get("engine"), adapter, adapter_name) as live:
        evaluate_with_memory(
            inp.manifest, out.episodes, out.summary, out.provenance,
            lambda: policy_from_params(live(), threads=sm.threads, adapter=adapter, adapter_name=adapter_name),
            memory=sm.wildcards.memory,
            reference=inp.get("reference"), memories=inp.get("memories"), bank=inp.get("bank"),
            queries=inp.get("queries"), split=sm.wildcards.split, max_steps=p["max_steps"], seed=p["seed"],
            num_envs=p["num_envs"], alfworld_data=p["alfworld_data"],
            run_params={"model": sm.wildcards.model, "adapter": sm.wildcards.adapter, "adapter_path": adapter,
                        "memory": sm.wildcards.memory, **result_params(p)},
            expert=expert_mode(p["backend"], p["expert_search"]))
    # the selection file names the adapter: its folder and checksum go into the job's provenance
    # and the shared engine, when one played
    return {"provenance": {"model": {"adapter_path": adapter, "adapter_name": adapter_name,
                                     "engine": inp.get("engine") or "own"},
                           "extra_inputs": [adapter] if inp.get("selected") else []}}


# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
