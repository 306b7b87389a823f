"""Evaluation speed benchmark: the same tasks, the same model, several ways, in one invocation.

  naive    one episode at a time, the whole prompt re-encoded every turn (plain `generate`, the
           hf backend);
  vllm     all episodes batched through vLLM's offline engine (the cluster's backend; here its CPU
           build), automatic prefix caching on, compiled; its engine start-up is timed apart and
           included in `episodes_per_hour_with_startup`;
  vllm-eager  the same without compilation (`enforce_eager`): seconds to start, slower turns.

    python -m duomem.benchmark --model results/models/smollm2-135m-instruct --episodes 16 \
        --modes naive,vllm-eager,vllm

(The hand-written KV-cache modes `kv` and `fast` were measured beside these on 2026-12-01 and then
retired with policies/kv.py: README, "Benchmark".)

Token accounting: "processed" counts every token the model ran a forward pass over (prefill and
decoding inputs); "unique" counts the tokens that exist: each episode's final conversation plus its
last completion. processed/unique is 1.0 when nothing is computed twice and below 1.0 when episodes
share a prefix that is computed once.
"""

import argparse
import json
import subprocess
import sys
import time

from .agent import run_episodes
from .data import build_manifest, data_root
from .env import EnvPool
from .io import write_json_atomic
from .memory_config import context_builder
from .policies.hf import HFPolicy
from .references import load_references

MODES = {"naive": dict(batch=1), "vllm": dict(batch=None, eager=False), "vllm-eager": dict(batch=None, eager=True)}


class _Metered:
    """Wraps a policy: seconds inside it, tokens a plain `generate` processes, and each episode's
    last prompt + completion size (its conversations are the same list object every turn)."""

    def __init__(self, policy):
        self.policy, self.seconds, self.processed, self.cached = policy, 0.0, 0, 0
        self.final = {}  # id(conversation) -> (conversation, tokens of last prompt + completion)

    def act(self, conversations, infos=None):
        t0 = time.perf_counter()
        out = self.policy.act(conversations, infos)
        self.seconds += time.perf_counter() - t0
        for conv, c in zip(conversations, out):
            self.final[id(conv)] = (conv, c.prompt_tokens + c.completion_tokens)
            self.processed += c.prompt_tokens + c.completion_tokens
            self.cached += c.cached_tokens
        return out


def _policy(mode, model, threads, batch, max_new_tokens, seed, vllm_dtype):
    if mode.startswith("vllm"):
        from .policies.vllm_backend import VLLMPolicy

        return VLLMPolicy(model, max_tokens=max_new_tokens, seed=seed, dtype=vllm_dtype,
                          enforce_eager=MODES[mode]["eager"], max_model_len=8192)
    return HFPolicy(model, threads=threads, batch_size=batch, max_new_tokens=max_new_tokens, seed=seed)


def run_mode(mode, tasks, root, model, max_steps, max_new_tokens, threads, seed, context_for, vllm_dtype="bfloat16"):
    batch = MODES[mode]["batch"] or len(tasks)
    t0 = time.perf_counter()
    policy = _policy(mode, model, threads, batch, max_new_tokens, seed, vllm_dtype)
    startup = time.perf_counter() - t0
    meter = _Metered(policy)
    t0 = time.perf_counter()
    with EnvPool(batch, max_steps=max_steps) as pool:
        records = run_episodes(tasks, meter, pool, root, max_steps, seed=seed, context_for=context_for)
    wall = time.perf_counter() - t0  # includes starting and stopping the workers
    order = {t["task_id"]: i for i, t in enumerate(tasks)}
    records.sort(key=lambda r: order[r["task_id"]])
    processed, model_s = meter.processed, meter.seconds  # naive: every prompt in full, every turn
    if mode.startswith("vllm"):  # the engine computes only what its prefix cache does not hold
        processed = meter.processed - meter.cached
    unique = sum(n for _, n in meter.final.values())
    policy.close()
    return {
        "mode": mode, "episodes": len(records), "wall_seconds": round(wall, 1),
        "episodes_per_hour": round(3600 * len(records) / wall, 1),
        # Model load (+ vLLM's compilation and KV-cache set-up): paid once per job that builds the policy.
        "startup_seconds": round(startup, 1),
        "episodes_per_hour_with_startup": round(3600 * len(records) / (wall + startup), 1),
        "won": sum(r["won"] for r in records), "steps": sum(r["steps"] for r in records),
        "processed_tokens": processed, "unique_tokens": unique,
        "processed_over_unique": round(processed / unique, 3),
        "outside_model_share": round(1 - model_s / wall, 3),
        # The environments' own CPU time (resets, steps) over the CPU time the run had: work that
        # competes with the model for the same cores however well it overlaps.
        "env_cpu_seconds": round(pool.cpu_seconds, 1),
        "env_cpu_share": round(pool.cpu_seconds / (wall * threads), 3),
        "actions": [r["actions"] for r in records],
    }


def paper_dry_run_seconds(repo):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "-n", "-q", "--configfile", "config.yaml"], cwd=repo,
                   check=True, capture_output=True)
    return round(time.perf_counter() - t0, 2)


def benchmark(model, split="valid_unseen", episodes=16, max_steps=10, max_new_tokens=48, threads=2, seed=0,
              alfworld_data="", reference=True, modes=tuple(MODES), repo=".", vllm_dtype="bfloat16"):
    root = data_root(alfworld_data)
    tasks = build_manifest(root, split, per_task_type=-(-episodes // 6), seed=seed)[:episodes]
    refs = load_references() if reference else None
    context_for = context_builder("trajectory" if reference else "none", tasks, references=refs)
    results = {m: run_mode(m, tasks, root, model, max_steps, max_new_tokens, threads, seed, context_for, vllm_dtype)
               for m in modes}
    out = {"model": str(model), "split": split, "episodes": len(tasks), "max_steps": max_steps,
           "max_new_tokens": max_new_tokens, "threads": threads, "reference_trajectory": reference,
           "vllm_dtype": vllm_dtype,
           "modes": {m: {k: v for k, v in r.items() if k != "actions"} for m, r in results.items()}}
    if "naive" in results:
        naive = results["naive"]
        for m in ("vllm", "vllm-eager"):
            if m in results:
                out[f"{m}_over_naive"] = round(results[m]["episodes_per_hour"] / naive["episodes_per_hour"], 2)
                out[f"{m}_over_naive_with_startup"] = round(results[m]["episodes_per_hour_with_startup"]
                                                            / naive["episodes_per_hour_with_startup"], 2)
                out[f"episodes_with_different_actions_{m}_vs_naive"] = sum(
                    a != b for a, b in zip(naive["actions"], results[m]["actions"]))
    out["paper_dry_run_seconds"] = paper_dry_run_seconds(repo)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="results/models/smollm2-135m-instruct")
    ap.add_argument("--split", default="valid_unseen")
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-reference", action="store_true", help="prompts without the reference trajectory")
    ap.add_argument("--vllm-dtype", default="bfloat16", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default="results/benchmarks/fast_eval.json")
    args = ap.parse_args(argv)
    out = benchmark(args.model, args.split, args.episodes, args.max_steps, args.max_new_tokens, args.threads,
                    reference=not args.no_reference, modes=tuple(args.modes.split(",")),
                    vllm_dtype=args.vllm_dtype)
    write_json_atomic(args.out, out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":  # vLLM's engine runs in child processes: build it only here
    main()
