"""vLLM's offline engine on this CPU, its core in a child process or in this one (README, "The vLLM
backend"): start-up seconds, then per batch size B, B random prompts of 1,500 tokens (600 shared)
prefilled, then 48 tokens decoded from the cached prompts (ignore_eos). Run once per mode:

    VLLM_ENABLE_V1_MULTIPROCESSING=1 python docs/measure/vllm_engine_process.py MODEL 36
    VLLM_ENABLE_V1_MULTIPROCESSING=0 python docs/measure/vllm_engine_process.py MODEL 36 108
"""

import os
import random
import sys
import time


def main(model, batches):
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_WORKER_MULTIPROC_METHOD": "fork",
                       "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, sorted(os.sched_getaffinity(0))))}.items():
        os.environ.setdefault(key, value)
    from vllm import LLM, SamplingParams

    t0 = time.time()
    llm = LLM(model=model, dtype="bfloat16", max_model_len=8192, enforce_eager=True, block_size=32,
              enable_prefix_caching=True, seed=0)
    print(f"start-up {time.time() - t0:.1f} s", flush=True)
    rng = random.Random(0)
    shared = [rng.randrange(100, 40000) for _ in range(600)]
    for n in batches:
        prompts = [{"prompt_token_ids": shared + [rng.randrange(100, 40000) for _ in range(900)]} for _ in range(n)]
        t = time.time()
        llm.generate(prompts, SamplingParams(max_tokens=1, temperature=0), use_tqdm=False)
        prefill = time.time() - t
        t = time.time()
        llm.generate(prompts, SamplingParams(max_tokens=48, ignore_eos=True, temperature=0), use_tqdm=False)
        decode = time.time() - t
        print(f"batch {n}: prefill {prefill:.1f} s; 48 tokens from the cache {decode:.1f} s, "
              f"{n * 47 / decode:.0f} decode tokens/s, {decode / 47 * 1000:.0f} ms/step", flush=True)


if __name__ == "__main__":  # a child engine process re-imports this module: build it only here
    main(sys.argv[1], [int(b) for b in sys.argv[2:]])
