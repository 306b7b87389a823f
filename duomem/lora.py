"""LoRA training on teacher trajectories (paper §3.3 "LoRA Fine-Tuning", §4 "LoRA Training Details").

Only the adapter is trained (the base stays frozen), by next-token prediction on the teacher's
assistant turns (eq. 5), with alpha = 2r, for one epoch. The paper's grid: r in {8, 16, 32},
lr in {1e-6, 5e-6, 1e-5, 5e-5}.

Target modules: the paper does not list them, but §5.2 pins them down: "Qwen3-4B-Instruct with rank r=8 adds
5.9M parameters (<0.15% of the backbone)". LoRA on q/k/v/o of Qwen3-4B at r=8 is exactly 5,898,240
parameters (0.146%); adding the MLP (gate/up/down) would give 16.5M (0.41%). So the default is the
attention projections; modules="attention_mlp" adds the MLP projections.

The adapter folder appears atomically (built in a sibling temp folder, then renamed). Checkpoints go
to a sibling work folder that survives a crash; a rerun with the same settings resumes from the last
complete checkpoint through Trainer's resume_from_checkpoint.
"""

import json
import math
import shutil
import time
from pathlib import Path

from .errors import ConfigError
from .io import write_json_atomic
from .provenance import provenance, sha256_file
from .sft import IGNORE_INDEX, STRATEGIES, read_sft, tokenize_sample

MODULE_SETS = {
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "attention_mlp": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}
TEXT_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gemma4_text")
# Multimodal Gemma: the vision/audio towers have q_proj... too; adapt the language model only.
MULTIMODAL_FAMILIES = ("gemma3", "gemma4")


def target_modules(config, modules="attention"):
    """peft `target_modules` for the model family: its attention (+ MLP) projections."""
    if modules not in MODULE_SETS:
        raise ConfigError(f"modules must be one of {', '.join(MODULE_SETS)}, got {modules!r}")
    names, family = MODULE_SETS[modules], getattr(config, "model_type", None)
    if family in TEXT_FAMILIES:
        return list(names)
    if family in MULTIMODAL_FAMILIES:
        return r".*language_model.*\.(" + "|".join(names) + ")"
    raise ConfigError(f"no LoRA target modules known for model family {family!r}; "
                      f"known: {', '.join(TEXT_FAMILIES + MULTIMODAL_FAMILIES)}")


def adapted_layers(model_config, top_layers=None):
    """peft `layers_to_transform`: None (every layer) or the indices of the top `top_layers` decoder
    layers. Adapting only the upper layers stops the backward pass there: the lower layers run
    forward only, which is what makes CPU training cheaper (README, "Training speed")."""
    if top_layers is None:
        return None
    n = getattr(model_config, "num_hidden_layers", None)
    if not isinstance(n, int):
        raise ConfigError("lora.top_layers needs the model's num_hidden_layers in its config")
    if not (isinstance(top_layers, int) and 0 < top_layers <= n):
        raise ConfigError(f"lora.top_layers must be between 1 and the model's {n} layers, got {top_layers!r}")
    return list(range(n - top_layers, n))


def lora_config(model_config, rank, alpha=None, dropout=0.05, modules="attention", top_layers=None):
    from peft import LoraConfig

    alpha = 2 * rank if alpha is None else alpha  # paper §4: alpha / r = 2
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
                      target_modules=target_modules(model_config, modules),
                      layers_to_transform=adapted_layers(model_config, top_layers))


def lr_label(lr):
    """A canonical, lossless path label: 5e-05, 0.00005 and "5e-5" all give "5e-05"; 2.5e-5 gives "2.5e-05"."""
    lr = _positive_lr(lr)
    mantissa, exponent = f"{lr:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def adapter_dir(root, model, strategy, rank, lr):
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown SFT input strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    return Path(root) / model / strategy / f"r{_positive_int('rank', rank)}_lr{lr_label(lr)}"


def _positive_lr(lr):
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ConfigError(f"lr must be a positive number, got {lr!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    return value


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def encode_sft(tokenizer, records, max_length, chat_template_kwargs=None):
    """Token ids + loss labels per record (one sequence, or one per trained turn where the template
    needs it: sft.tokenize_sample). A sequence longer than max_length is cut on the right (its later
    turns lose their loss); one left without any trained token is dropped."""
    examples, truncated, dropped, split = [], 0, 0, 0
    for r in records:
        sequences = tokenize_sample(tokenizer, r["messages"], r["train_on"], chat_template_kwargs)
        split += len(sequences) > 1
        for ex in sequences:
            if len(ex["input_ids"]) > max_length:
                truncated += 1
                ex = {k: v[:max_length] for k, v in ex.items()}
                if all(label == IGNORE_INDEX for label in ex["labels"]):
                    dropped += 1
                    continue
            examples.append(ex)
    return examples, {"samples": len(examples), "samples_truncated": truncated, "samples_dropped": dropped,
                      "records_split_per_turn": split,
                      "trained_tokens": sum(sum(label != IGNORE_INDEX for label in e["labels"]) for e in examples)}


def _sort_target_modules(config_path):
    """peft writes target_modules from a set, in an order that changes with Python's hash seed: sorted,
    two identical trainings give byte-identical adapter folders."""
    config = json.loads(config_path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _complete(checkpoint):
    """Trainer writes trainer_state.json last, and not atomically: a kill can leave it torn."""
    try:
        return "global_step" in json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False


def _last_checkpoint(work):
    """The newest complete checkpoint; partial ones are removed."""
    done = []
    for d in work.glob("checkpoint-*"):
        if _complete(d):
            done.append(d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return str(max(done, key=lambda d: int(d.name.split("-")[-1]))) if done else None


def trained_positions_loss(model, inputs, num_items_in_batch=None, prompt_grad=True):
    """The causal-LM loss on the trained (assistant) tokens, with logits computed only where a trained
    token is predicted (`logits_to_keep`). The default loss projects every position onto the whole
    vocabulary (49k rows for SmolLM2) and masks most of them away afterwards: on a CPU that is ~15 %
    of a step. Same value as the model's own loss: the sum over trained tokens, divided by the
    Trainer's token count over the accumulated batch or, without one, by this batch's.

    prompt_grad=False: the prompt before the first trained token (system prompt, memory, task, first
    observation) goes forward without autograd, and the rest attends to its keys and values from
    the cache. The loss is the same; the gradient leaves out the paths through the prompt's own
    hidden states, and the backward pass skips those positions (README, "Training speed")."""
    import torch
    import torch.nn.functional as F

    inputs = dict(inputs)
    targets = inputs.pop("labels")[:, 1:]
    keep = (targets != IGNORE_INDEX).any(0).nonzero().squeeze(1)  # positions whose next token is trained
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    full_mask = torch.ones_like(ids) if mask is None else mask
    start = 0
    if prompt_grad is False and len(keep):
        start = int(keep[0])
    if start > 0:
        inputs.pop("input_ids"), inputs.pop("attention_mask", None)
        positions = (full_mask.long().cumsum(-1) - 1).clamp(min=0)  # right or left padding alike
        with torch.no_grad():
            prompt = model(input_ids=ids[:, :start], attention_mask=full_mask[:, :start],
                           position_ids=positions[:, :start], use_cache=True, logits_to_keep=1, **inputs)
        outputs = model(input_ids=ids[:, start:], attention_mask=full_mask, position_ids=positions[:, start:],
                        past_key_values=prompt.past_key_values, use_cache=True, logits_to_keep=keep - start,
                        **inputs)
    else:
        outputs = model(**inputs, logits_to_keep=keep)
    targets = targets[:, keep]
    loss = F.cross_entropy(outputs.logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX,
                           reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum()
    return loss / count, outputs


def _curve_callback(curve, samples_per_step, folder):
    """A TrainerCallback that saves the adapter once the first N samples of the pass have been trained
    on, for each N in `curve` (a learning curve from one run: with a constant learning rate that is
    the adapter N samples alone would give, up to their order)."""
    from transformers import TrainerCallback

    class SaveCurve(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            for n in curve:
                point = Path(folder) / f"n{n}"
                if state.global_step * samples_per_step >= n and not point.exists():
                    tmp = point.with_name(f".{point.name}.tmp")
                    shutil.rmtree(tmp, ignore_errors=True)
                    model.save_pretrained(str(tmp))
                    (tmp / "README.md").unlink(missing_ok=True)
                    _sort_target_modules(tmp / "adapter_config.json")
                    write_json_atomic(tmp / "curve_point.json", {"samples": n, "step": state.global_step})
                    tmp.rename(point)

    return SaveCurve()


def train_lora(model_dir, sft_path, out_dir, *, rank, lr, alpha=None, epochs=1, seed=0, threads=1,
               max_samples=None, max_length=4096, batch_size=4, grad_accum=4, checkpoint_steps=200,
               logging_steps=10, dropout=0.05, modules="attention", warmup_ratio=0.03, scheduler="cosine",
               decay_ratio=0.2, gradient_checkpointing="auto", bf16="auto", chat_template_kwargs=None, curve=(), callbacks=(),
               progress=True, top_layers=None, prompt_grad=True):
    """Train one LoRA adapter on an SFT file; write out_dir/{adapter_config.json,
    adapter_model.safetensors, trainer_log.json, train_summary.json}; return the summary.
    `curve` (sample counts below the number of samples): the adapter after the first N samples of the
    first epoch also goes to out_dir/curve/nN (the learning curve's points).
    `scheduler="warmup_stable_decay"`: the learning rate stays constant after warm-up, then falls
    linearly over the last `decay_ratio` of the steps (n steps: lr, (n-1)/n lr, ..., lr/n); curve
    points before the fall are what a constant-lr run of N samples gives, the final adapter is annealed.

    `gradient_checkpointing` and `bf16` ("auto": on when a GPU trains) are what lets an 8-12B student
    train on 8,192-token histories in one GPU's memory (README, "Expected peak memory"): the base
    weights are then bf16, activations are recomputed instead of kept, and matmuls run in bf16."""
    rank = _positive_int("rank", rank)
    lr = _positive_lr(lr)
    alpha = 2 * rank if alpha is None else alpha  # paper §4: alpha / r = 2
    if modules not in MODULE_SETS:
        raise ConfigError(f"modules must be one of {', '.join(MODULE_SETS)}, got {modules!r}")
    if not (isinstance(alpha, (int, float)) and alpha > 0):
        raise ConfigError(f"alpha must be a positive number, got {alpha!r}")
    if not (isinstance(epochs, (int, float)) and epochs > 0):
        raise ConfigError(f"epochs must be a positive number, got {epochs!r}")
    for name, value in (("batch_size", batch_size), ("grad_accum", grad_accum), ("threads", threads),
                        ("checkpoint_steps", checkpoint_steps), ("logging_steps", logging_steps),
                        ("max_length", max_length)):
        _positive_int(name, value)
    if max_samples is not None:
        _positive_int("max_samples", max_samples)
    if top_layers is not None:
        _positive_int("top_layers", top_layers)
    if prompt_grad not in (True, False):
        raise ConfigError(f"prompt_grad must be true or false, got {prompt_grad!r}")
    if isinstance(decay_ratio, bool) or not isinstance(decay_ratio, (int, float)) or not 0 < decay_ratio <= 1:
        raise ConfigError(f"decay_ratio must be a number in (0, 1], got {decay_ratio!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
    curve = sorted({_positive_int("curve point", n) for n in curve})
    for name, value in (("gradient_checkpointing", gradient_checkpointing), ("bf16", bf16)):
        if value not in ("auto", True, False):
            raise ConfigError(f"{name} must be auto, true or false, got {value!r}")

    import random

    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainingArguments, set_seed)

    records = read_sft(sft_path)  # a missing or empty file fails here, before any folder is made
    out = Path(out_dir)
    work, tmp = out.with_name(f".{out.name}.work"), out.with_name(f".{out.name}.tmp")
    cuda = torch.cuda.is_available()
    checkpointing = cuda if gradient_checkpointing == "auto" else gradient_checkpointing
    bf16 = cuda if bf16 == "auto" else bf16
    settings = {"model": str(model_dir), "sft_sha256": sha256_file(sft_path), "rank": rank, "alpha": alpha, "lr": lr,
                "epochs": epochs, "seed": seed, "max_samples": max_samples, "max_length": max_length,
                "batch_size": batch_size, "grad_accum": grad_accum, "dropout": dropout, "modules": modules,
                "warmup_ratio": warmup_ratio, "scheduler": scheduler, "gradient_checkpointing": checkpointing,
                **({"decay_ratio": decay_ratio} if scheduler == "warmup_stable_decay" else {}),
                "bf16": bf16, "chat_template_kwargs": dict(chat_template_kwargs or {}), "curve": curve,
                "top_layers": top_layers, "prompt_grad": prompt_grad}
    # Checkpoints of other settings must never be resumed: the work folder carries a fingerprint.
    fingerprint = work / "settings.json"
    if work.exists() and (not fingerprint.exists() or json.loads(fingerprint.read_text()) != settings):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(fingerprint, settings)
    resume = _last_checkpoint(work)

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if max_samples is not None and max_samples < len(records):  # a seeded subset across all task types
        keep = sorted(random.Random(seed).sample(range(len(records)), max_samples))
        records = [records[i] for i in keep]
    examples, counts = encode_sft(tokenizer, records, max_length, chat_template_kwargs)
    if not examples:
        raise ConfigError(f"no SFT sample of {sft_path} keeps a trained token within max_length={max_length}")
    if curve and curve[-1] >= len(examples):
        raise ConfigError(f"learning-curve point {curve[-1]} is not below the {len(examples)} training samples of "
                          f"{sft_path}: the last point is the adapter itself (lower lora.curve or collect more)")

    schedule_kwargs = {}
    if scheduler == "warmup_stable_decay":  # transformers wants the decay as a step count
        steps = math.ceil(math.ceil(len(examples) / batch_size) / grad_accum) * epochs
        schedule_kwargs = {"num_decay_steps": max(1, round(decay_ratio * steps)), "decay_type": "linear"}

    set_seed(seed)  # before the adapter exists: its initialisation is seeded too
    # The frozen base weights in bf16 wherever bf16 runs (a CPU too: 13 % more tokens/s than fp32
    # weights under autocast, README "Measured"); peft keeps the adapter's own weights in fp32.
    weights = torch.bfloat16 if cuda or bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=weights)
    model.config.use_cache = False
    targets = target_modules(model.config, modules)
    layers = adapted_layers(model.config, top_layers)
    model = get_peft_model(model, lora_config(model.config, rank, alpha, dropout, modules, top_layers))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())

    args = TrainingArguments(
        output_dir=str(work), per_device_train_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
        learning_rate=lr, num_train_epochs=epochs, lr_scheduler_type=scheduler, warmup_steps=warmup_ratio,
        lr_scheduler_kwargs=schedule_kwargs,
        logging_steps=logging_steps, save_strategy="steps", save_steps=checkpoint_steps, save_total_limit=2,
        seed=seed, data_seed=seed, bf16=bf16, use_cpu=not cuda, report_to="none", disable_tqdm=not progress,
        remove_unused_columns=False, dataloader_num_workers=0,
        # passed only when asked for: the argument's name is being renamed across transformers 5.x
        **({"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}}
           if checkpointing else {}))

    class TrainedPositionsTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = trained_positions_loss(model, inputs, num_items_in_batch, prompt_grad)
            return (loss, outputs) if return_outputs else loss

    trainer = TrainedPositionsTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(examples),
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
        processing_class=tokenizer,
        callbacks=list(callbacks) + ([_curve_callback(curve, batch_size * grad_accum, work / "curve")] if curve else []))
    resumed_step = json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"] if resume else 0
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - started

    history = trainer.state.log_history
    total_tokens = sum(len(e["input_ids"]) for e in examples)
    losses = [{k: h[k] for k in ("step", "epoch", "loss", "learning_rate", "grad_norm") if k in h}
             for h in history if "loss" in h]
    summary = provenance(
        model=str(model_dir), sft=str(sft_path), rank=rank, alpha=alpha, lr=lr, lr_label=lr_label(lr),
        dropout=dropout, modules=modules, epochs=epochs, seed=seed, batch_size=batch_size, grad_accum=grad_accum,
        effective_batch=batch_size * grad_accum, max_length=max_length, max_samples=max_samples,
        target_modules=targets, top_layers=top_layers, prompt_grad=prompt_grad, adapted_layers=layers, trainable_params=trainable, total_params=total,
        trainable_pct=round(100 * trainable / total, 4), **counts, steps=trainer.state.global_step,
        resumed_from_step=resumed_step, seconds=round(seconds, 2),
        final_loss=losses[-1]["loss"] if losses else None, train_loss=result.training_loss,
        device="cuda" if cuda else "cpu", dtype=str(weights).removeprefix("torch."),
        mixed_precision="bf16" if bf16 else "no", gradient_checkpointing=checkpointing,
        peak_gpu_memory_mb=round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        total_tokens=total_tokens, curve=curve,
        # every token of every sample goes forward and back; a resumed run timed only its rest
        tokens_per_second=round(total_tokens * epochs / seconds, 1) if not resumed_step and seconds > 0 else None)

    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))  # adapter_config.json + adapter_model.safetensors
    (tmp / "README.md").unlink(missing_ok=True)  # peft's model card template: only noise here
    _sort_target_modules(tmp / "adapter_config.json")
    write_json_atomic(tmp / "trainer_log.json", {"loss_curve": losses, "log_history": history})
    write_json_atomic(tmp / "train_summary.json", summary)
    if curve:
        (work / "curve").rename(tmp / "curve")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    shutil.rmtree(work, ignore_errors=True)
    return summary
