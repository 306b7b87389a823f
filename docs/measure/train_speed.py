"""LoRA training speed on this CPU (README, "Training speed"): the first N Full History samples of an
SFT file, r8 on attention + MLP, one pass, in fp32 and in bf16 (bf16 base weights + autocast), with
LoRA dropout 0.05 and 0 (peft skips the dropout op at 0); last, bf16 / dropout 0 with the prompt
without autograd (`lora.prompt_grad: false`).

    python docs/measure/train_speed.py N [SFT]     # SFT: results/sft/expert/full.jsonl by default
"""

import sys

from duomem.lora import train_lora

if __name__ == "__main__":
    n = int(sys.argv[1])
    sft = sys.argv[2] if len(sys.argv) > 2 else "results/sft/expert/full.jsonl"
    for bf16, dropout, prompt_grad in ((False, 0.05, True), (False, 0.0, True), (True, 0.05, True), (True, 0.0, True),
                                       (True, 0.0, False)):
        s = train_lora("results/models/smollm2-135m-instruct", sft, f"results/benchmarks/train-speed-bf16-{bf16}-dropout-{dropout}-pg-{prompt_grad}",
                       rank=8, lr=1e-3, threads=2, max_samples=n, max_length=2048, batch_size=1, grad_accum=1,
                       checkpoint_steps=1000, logging_steps=4, modules="attention_mlp",
                       scheduler="constant_with_warmup", gradient_checkpointing=False, bf16=bf16, dropout=dropout, prompt_grad=prompt_grad,
                       progress=False)
        print("bf16" if bf16 else "fp32", f"dropout {dropout}", f"prompt_grad {prompt_grad}", {k: s[k] for k in ("total_tokens", "seconds", "tokens_per_second")})
