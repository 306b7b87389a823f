"""What prefill and decode cost on vLLM's offline CPU engine (README, "The vLLM backend"): engine
start-up seconds, then for every ROWS x LENGTH, ROWS random prompts of LENGTH tokens (up to 600
shared) prefilled, then 48 tokens decoded from the cache (ignore_eos); bf16, eager, 32-token blocks.
Optional KV_DTYPE: vLLM's kv_cache_dtype (e.g. fp8_e5m2). The engine core runs in this process
unless VLLM_ENABLE_V1_MULTIPROCESSING=1 puts it in a child.

    python docs/measure/vllm_decode.py MODEL 36 200,1000,2000,3000 [KV_DTYPE]   # cost against history
    VLLM_ENABLE_V1_MULTIPROCESSING=1 python docs/measure/vllm_decode.py MODEL 36 1500   # engine in a child
    VLLM_ENABLE_V1_MULTIPROCESSING=0 python docs/measure/vllm_decode.py MODEL 36,108 1500   # ... in this one
"""

import os
import random
import sys
import time


def main(model, rows, lengths, kv_cache_dtype=None):
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_WORKER_MULTIPROC_METHOD": "fork",
                       "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                       "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, sorted(os.sched_getaffinity(0))))}.items():
        os.environ.setdefault(key, value)
    from vllm import LLM, SamplingParams

    extra = {"kv_cache_dtype": kv_cache_dtype} if kv_cache_dtype else {}
    t0 = time.time()
    llm = LLM(model=model, dtype="bfloat16", max_model_len=8192, enforce_eager=True, block_size=32,
              enable_prefix_caching=True, seed=0, **extra)
    print(f"start-up {time.time() - t0:.1f} s", flush=True)
    rng = random.Random(0)
    for length in lengths:
        shared = [rng.randrange(100, 40000) for _ in range(min(600, length // 2))]
        for n in rows:
            prompts = [{"prompt_token_ids": shared + [rng.randrange(100, 40000) for _ in range(length - len(shared))]}
                       for _ in range(n)]
            t = time.time()
            llm.generate(prompts, SamplingParams(max_tokens=1, temperature=0), use_tqdm=False)
            prefill = time.time() - t
            t = time.time()
            llm.generate(prompts, SamplingParams(max_tokens=48, ignore_eos=True, temperature=0), use_tqdm=False)
            decode = time.time() - t
            print(f"{n} rows of {length} tokens: prefill {prefill:.1f} s; 48 tokens from the cache {decode:.1f} s, "
                  f"{decode / 47 * 1000:.0f} ms/step, {n * 47 / decode:.0f} decode tokens/s", flush=True)


if __name__ == "__main__":  # a child engine process re-imports this module: build it only here
    main(sys.argv[1], [int(n) for n in sys.argv[2].split(",")], [int(n) for n in sys.argv[3].split(",")],
         *sys.argv[4:5])
