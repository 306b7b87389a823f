"""One real evaluation on vLLM's CPU build with a given KV block size (README, "KV block size").

    python docs/measure/eval_block_size.py OUT PER_TYPE BLOCK [ADAPTER] [NUM_ENVS] [DRAFTS [KV_DTYPE]]

BLOCK 0 leaves vLLM's default (128 on the CPU build). The games are valid_unseen's seeded subset of
PER_TYPE per task type, No Memory, 30 steps, greedy, 48 new tokens; ADAPTER (a peft folder) is
merged into a temporary copy of the weights as `vllm.merge_lora` does ("-": none). DRAFTS: n-gram
speculative tokens (`vllm.ngram_speculative_tokens`, 0: none); KV_DTYPE: vLLM's `kv_cache_dtype`
(e.g. fp8_e5m2). Needs `make main`'s model folder (run it from the run's folder).
"""

import json
import sys
import time
from pathlib import Path

from duomem.data import build_manifest, data_root
from duomem.evaluate import evaluate_with_memory
from duomem.io import write_jsonl_atomic
from duomem.policies.vllm_backend import VLLMPolicy, speculative_config

MODEL = "results/models/smollm2-135m-instruct"

if __name__ == "__main__":  # environment workers re-import this file
    out, per_type, block = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    adapter = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    num_envs = int(sys.argv[5]) if len(sys.argv) > 5 else 24
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "manifest.jsonl", build_manifest(data_root(""), "valid_unseen", per_type, seed=0))
    engine = {"block_size": block} if block else {}
    drafts = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    if drafts:
        engine["speculative_config"] = speculative_config(drafts)
    if len(sys.argv) > 7:
        engine["kv_cache_dtype"] = sys.argv[7]
    started = time.time()
    rows = evaluate_with_memory(
        out / "manifest.jsonl", out / "episodes.jsonl", out / "summary.csv", out / "provenance.json",
        lambda: VLLMPolicy(MODEL, adapter=adapter, merge_lora=bool(adapter), max_tokens=48, seed=0,
                           dtype="bfloat16", enforce_eager=True, max_model_len=8192, **engine),
        memory="none", split="valid_unseen", max_steps=30, seed=0, num_envs=num_envs, alfworld_data="",
        run_params={"block_size": block, "adapter": adapter, **engine})
    print(json.dumps({"block_size": block or "default", "drafts": drafts, "kv_cache_dtype": engine.get("kv_cache_dtype"),
                      "seconds": round(time.time() - started, 1), **rows[0]}))
