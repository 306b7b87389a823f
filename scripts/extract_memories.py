from duomem.cli import run
from duomem.memory import extraction_params, make_memory_bank
from duomem.models import token_counter
from duomem.policies import policy_from_params
from duomem.serving import endpoint, result_params


def main(sm):
    p = extraction_params(dict(sm.params), sm.params.max_new_tokens, sm.params.model_max_new_tokens)
    method = "keysteps" if p["backend"] == "expert" else "llm"
    with endpoint(p, sm.log[0]) as live:  # starts the model's `serve` command when it has one
        make_memory_bank(sm.input.trajectories, sm.output[0], method,
                         make_policy=lambda: policy_from_params(live(), threads=sm.threads),
                         count_tokens=token_counter(p["token_counter"]), batch_size=p["batch_size"],
                         max_empty=p["max_empty_scripts"],
                         fingerprint_params={"model": sm.wildcards.model, **result_params(p)})


# Guarded: spawned worker processes re-import this file.
if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
