from duomem.cli import run
from duomem.lora import train_lora
from duomem.policies import template_kwargs

KEYS = ("alpha", "epochs", "seed", "max_samples", "max_length", "batch_size", "grad_accum", "checkpoint_steps",
        "logging_steps", "dropout", "modules", "warmup_ratio", "scheduler", "gradient_checkpointing", "bf16",
        "curve", "top_layers", "prompt_grad", "decay_ratio")


def main(sm):
    p = dict(sm.params)
    # a hub id is no pipeline file: the base model comes from input.model when the pipeline built it
    model = sm.input.get("model") or p["path"]
    template = template_kwargs(p.get("thinking"))
    rank, lr = p.get("rank") or sm.wildcards.get("rank"), p.get("lr") or sm.wildcards.get("lr")
    train_lora(model, sm.input.sft, sm.output[0], rank=int(rank), lr=float(lr), threads=sm.threads,
               chat_template_kwargs=template, progress=False, **{k: p[k] for k in KEYS if p.get(k) is not None})


if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
