"""What a decode step costs on vLLM's CPU build as the history grows (README, "The vLLM backend"):
36 random prompts of L tokens each (up to 600 shared), prefilled, then 48 tokens decoded from the
cache (ignore_eos), per L; the engine core in this process, bf16, eager, 32-token blocks. Optional
KV_DTYPE: vLLM's kv_cache_dtype (e.g. fp8_e5m2).

    python docs/measure/vllm_decode_context.py MODEL 200,1000,2000,3000 [KV_DTYPE]
"""

import os
import random
import sys
import time


def main(model, lengths, kv_cache_dtype=None, rows=36):
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_WORKER_MULTIPROC_METHOD": "fork",
                       "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                       "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, sorted(os.sched_getaffinity(0))))}.items():
        os.environ.setdefault(key, value)
    from vllm import LLM, SamplingParams

    extra = {"kv_cache_dtype": kv_cache_dtype} if kv_cache_dtype else {}
    llm = LLM(model=model, dtype="bfloat16", max_model_len=8192, enforce_eager=True, block_size=32,
              enable_prefix_caching=True, seed=0, **extra)
    rng = random.Random(0)
    for length in lengths:
        shared = [rng.randrange(100, 40000) for _ in range(min(600, length // 2))]
        prompts = [{"prompt_token_ids": shared + [rng.randrange(100, 40000) for _ in range(length - len(shared))]}
                   for _ in range(rows)]
        llm.generate(prompts, SamplingParams(max_tokens=1, temperature=0), use_tqdm=False)
        t = time.time()
        llm.generate(prompts, SamplingParams(max_tokens=48, ignore_eos=True, temperature=0), use_tqdm=False)
        seconds = time.time() - t
        print(f"{length}-token prompts: {seconds / 47 * 1000:.0f} ms/step, {rows * 47 / seconds:.0f} decode tokens/s",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(n) for n in sys.argv[2].split(",")], *sys.argv[3:4])
