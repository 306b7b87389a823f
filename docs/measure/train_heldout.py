"""Held-out loss of a LoRA setting (README, "Training speed"): the SFT file's samples split 24 held out
/ the rest (or the next N) trained (seeded), one pass (r8 attention + MLP, lr 1e-3 constant, bf16, dropout 0.05) overridden by VARIANT
(`key=json,...`, e.g. `dropout=0.0,top_layers=15`), then the loss and next-token accuracy on the
held-out samples' trained (assistant) tokens.

    python docs/measure/train_heldout.py VARIANT [SFT [N]]     # SFT: results/sft/expert/full.jsonl
"""

import sys, json, random, torch
from pathlib import Path
from duomem.lora import train_lora, encode_sft, IGNORE_INDEX
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
variant = sys.argv[1]
sft = sys.argv[2] if len(sys.argv) > 2 else "results/sft/expert/full.jsonl"
recs = [json.loads(l) for l in open(sft)]
idx = list(range(len(recs))); random.Random(1).shuffle(idx)
n = int(sys.argv[3]) if len(sys.argv) > 3 else len(recs) - 24
held, train = [recs[i] for i in idx[:24]], [recs[i] for i in idx[24:24 + n]]
Path("results/benchmarks/heldout-train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
kw = dict(rank=8, lr=1e-3, threads=2, max_length=2048, batch_size=1, grad_accum=1, checkpoint_steps=1000,
          logging_steps=4, modules="attention_mlp", scheduler="constant_with_warmup", gradient_checkpointing=False,
          bf16=True, progress=False)
for part in variant.split(","):
    k, v = part.split("="); kw[k] = json.loads(v)
out = f"results/benchmarks/heldout-{variant}"
s = train_lora("results/models/smollm2-135m-instruct", "results/benchmarks/heldout-train.jsonl", out, **kw)
tok = AutoTokenizer.from_pretrained("results/models/smollm2-135m-instruct")
model = AutoModelForCausalLM.from_pretrained("results/models/smollm2-135m-instruct", dtype=torch.bfloat16)
model = PeftModel.from_pretrained(model, out).eval()
ex, _ = encode_sft(tok, held, 2048)
tot, n, acc = 0.0, 0, 0
with torch.no_grad():
    for e in ex:
        ids = torch.tensor([e["input_ids"]]); lab = torch.tensor([e["labels"]])
        logits = model(input_ids=ids).logits[0, :-1].float(); t = lab[0, 1:]
        m = t != IGNORE_INDEX
        tot += torch.nn.functional.cross_entropy(logits[m], t[m], reduction="sum").item(); n += m.sum().item()
        acc += (logits[m].argmax(-1) == t[m]).sum().item()
print(variant, "train_s", s["seconds"], "tok/s", s["tokens_per_second"], "train_loss", round(s["train_loss"], 4),
      "heldout_loss", round(tot / n, 4), "heldout_acc", round(acc / n, 4), flush=True)
