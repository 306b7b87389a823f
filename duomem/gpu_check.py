"""Device check: peak GPU memory and seconds of one LoRA training step per paper student, and one
batched `generate`, measured on random-weight models of each student's exact shape.

    python -m duomem.gpu_check --out results/gpu_check.csv     (make gpu-check; one CUDA GPU)
    python -m duomem.gpu_check --tiny --out /tmp/check.csv      (CPU smoke test, tiny shapes)

Made for a machine with one GPU, torch, transformers and peft, and nothing else: no model weights
(each model is built from the architecture table below and initialised at random: memory and time
do not depend on the weights' values), no network, no vLLM/alfworld/snakemake/pandas. It imports
torch, transformers, peft, the standard library and duomem.lora (so LoRA targets are the ones
training uses; tests/test_gpu_check.py runs it with the modules such a machine lacks made unimportable).

The step is what `duomem.lora.train_lora` runs per micro-batch under the paper config (`lora:` in
config.yaml): bf16 weights under bf16 autocast, peft LoRA (largest grid rank, alpha = 2r, the
configured target modules, fp32 adapter), one micro-batch of `max_length` random token ids with the
loss on every token, backward, gradient clipping, AdamW step; with gradient checkpointing on, then
off (off may run out of memory: recorded as "oom"). The first step is a warm-up; the second is timed
when the time budget allows. Peaks are torch.cuda.max_memory_allocated (weights included) and
max_memory_reserved (what the caching allocator held). A time budget (default 7.5 min) skips the
students that would not fit, largest last; the CSV is rewritten atomically after every student.
"""

import argparse
import csv
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]

# Shape-bearing fields of each student's config.json on the hub (https://huggingface.co/<path>/
# blob/main/config.json); keys are config.yaml's model names. Only the shapes matter here, so
# rope/eps/token-id fields are left at transformers' defaults.
QWEN3_4B = {  # Qwen/Qwen3-4B-Instruct-2507 and Qwen/Qwen3-4B-Thinking-2507 (same config.json shapes)
    "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": True,
    "max_position_embeddings": 262144}
STUDENTS = {
    # google/gemma-4-E2B-it: text_config as published (35 layers, 15 with their own KV and 20 sharing
    # it, double-wide MLP in those, per-layer embeddings of 35 x 256 over a 262,144 vocabulary);
    # vision_config: 768 hidden, 16 layers, clipped linears (the rest: transformers' Gemma4VisionConfig
    # defaults, documented as gemma-4-e2b-it's); audio_config: transformers' defaults = published.
    "gemma4-e2b-it": {"path": "google/gemma-4-E2B-it", "family": "gemma4", "text": {
        "hidden_size": 1536, "intermediate_size": 6144, "num_hidden_layers": 35, "num_attention_heads": 8,
        "num_key_value_heads": 1, "head_dim": 256, "global_head_dim": 512, "num_kv_shared_layers": 20,
        "hidden_size_per_layer_input": 256, "vocab_size": 262144, "vocab_size_per_layer_input": 262144,
        "sliding_window": 512, "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * 7,
        "final_logit_softcapping": 30.0, "use_double_wide_mlp": True, "attention_k_eq_v": False,
        "enable_moe_block": False, "tie_word_embeddings": True, "max_position_embeddings": 131072},
        "vision": {"hidden_size": 768, "num_hidden_layers": 16, "num_attention_heads": 12,
                   "num_key_value_heads": 12, "head_dim": 64, "use_clipped_linears": True},
        "audio": {}},
    "qwen3-4b-instruct": {"path": "Qwen/Qwen3-4B-Instruct-2507", "family": "qwen3", "text": QWEN3_4B},
    "qwen3-4b-thinking": {"path": "Qwen/Qwen3-4B-Thinking-2507", "family": "qwen3", "text": QWEN3_4B,
                          "same_as": "qwen3-4b-instruct"},
    "qwen3-8b": {"path": "Qwen/Qwen3-8B", "family": "qwen3", "text": {  # Qwen/Qwen3-8B config.json
        "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False,
        "max_position_embeddings": 40960}},
    # google/gemma-3-12b-it: text_config as published (head_dim 256 and vocabulary 262,208 are the
    # Gemma3TextConfig defaults the published file relies on); vision_config: SigLIP-so400m, 896 px.
    "gemma3-12b-it": {"path": "google/gemma-3-12b-it", "family": "gemma3", "text": {
        "hidden_size": 3840, "intermediate_size": 15360, "num_hidden_layers": 48, "num_attention_heads": 16,
        "num_key_value_heads": 8, "head_dim": 256, "query_pre_attn_scalar": 256, "vocab_size": 262208,
        "sliding_window": 1024, "tie_word_embeddings": True, "max_position_embeddings": 131072},
        "vision": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                   "num_attention_heads": 16, "image_size": 896, "patch_size": 14, "vision_use_head": False},
        "mm_tokens_per_image": 256},
    "qwen3-14b": {"path": "Qwen/Qwen3-14B", "family": "qwen3", "text": {  # Qwen/Qwen3-14B config.json
        "hidden_size": 5120, "intermediate_size": 17408, "num_hidden_layers": 40, "num_attention_heads": 40,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False,
        "max_position_embeddings": 40960}},
    "qwen3-30b-a3b": {"path": "Qwen/Qwen3-30B-A3B", "family": "qwen3_moe", "text": {  # its config.json
        "hidden_size": 2048, "intermediate_size": 6144, "moe_intermediate_size": 768, "num_hidden_layers": 48,
        "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128, "num_experts": 128,
        "num_experts_per_tok": 8, "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [],
        "vocab_size": 151936, "tie_word_embeddings": False, "max_position_embeddings": 40960}},
    "qwen3-32b": {"path": "Qwen/Qwen3-32B", "family": "qwen3", "text": {  # Qwen/Qwen3-32B config.json
        "hidden_size": 5120, "intermediate_size": 25600, "num_hidden_layers": 64, "num_attention_heads": 64,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False,
        "max_position_embeddings": 40960}},
}
# --tiny: every dimension shrunk, each family's classes (and its quirks: MoE routing, KV sharing,
# per-layer embeddings, vision/audio towers) kept, so the whole check runs on a CPU in seconds.
TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 512, "max_position_embeddings": 256}
TINY = {
    "qwen3": {"text": {}},
    "qwen3_moe": {"text": {"moe_intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2}},
    "gemma3": {"text": {"query_pre_attn_scalar": 16, "sliding_window": 16},
               "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
               "mm_tokens_per_image": 4},
    "gemma4": {"text": {"num_hidden_layers": 4, "num_key_value_heads": 1, "global_head_dim": 32,
                        "num_kv_shared_layers": 2, "hidden_size_per_layer_input": 8,
                        "vocab_size_per_layer_input": 512, "sliding_window": 16,
                        "layer_types": ["sliding_attention", "full_attention"] * 2},
               "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16},
               "audio": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
                         "subsampling_conv_channels": [4, 4], "output_proj_dims": 16}},
}
# What the paper config trains with (config.yaml `lora:`), used when config.yaml cannot be read.
LORA_DEFAULTS = {"batch_size": 1, "max_length": 8192, "ranks": [8, 16, 32], "modules": "attention",
                 "models": ["gemma4-e2b-it", "qwen3-4b-instruct", "qwen3-8b", "gemma3-12b-it"]}
COLUMNS = ["kind", "student", "hub_path", "arch_class", "params_b", "lora_rank", "lora_params_m", "micro_batch",
           "max_length", "gradient_checkpointing", "bf16", "step_seconds", "peak_gib", "peak_reserved_gib",
           "tokens_per_s", "status", "note", "device", "software"]
GIB = 2 ** 30


def build_config(name, tiny=False):
    """The transformers config of a student (its exact shape, or --tiny's)."""
    from transformers import (Gemma3Config, Gemma3TextConfig, Gemma4AudioConfig, Gemma4Config,
                              Gemma4TextConfig, Gemma4VisionConfig, Qwen3Config, Qwen3MoeConfig,
                              SiglipVisionConfig)

    spec = STUDENTS[name]
    family, shrink = spec["family"], TINY[spec["family"]] if tiny else {}
    text = {**spec["text"], **(TINY_TEXT if tiny else {}), **shrink.get("text", {})}
    if family == "qwen3":
        return Qwen3Config(**text)
    if family == "qwen3_moe":
        return Qwen3MoeConfig(**text)
    if family == "gemma3":
        return Gemma3Config(text_config=Gemma3TextConfig(**text),
                            vision_config=SiglipVisionConfig(**{**spec["vision"], **shrink.get("vision", {})}),
                            mm_tokens_per_image=shrink.get("mm_tokens_per_image", spec["mm_tokens_per_image"]))
    if family == "gemma4":
        return Gemma4Config(text_config=Gemma4TextConfig(**text),
                            vision_config=Gemma4VisionConfig(**{**spec["vision"], **shrink.get("vision", {})}),
                            audio_config=Gemma4AudioConfig(**{**spec["audio"], **shrink.get("audio", {})}))
    raise ValueError(f"unknown family {family!r}")


def build_model(config, device, dtype):
    """AutoModelForCausalLM (what train_lora loads: the multimodal class for Gemma) at random init,
    created directly on `device`: on "meta" it costs nothing (parameter counts); on "cuda" every
    tensor is allocated and initialised on the GPU in `dtype`, never copied from the host."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def count_params(model):
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors count once


def meta_params(name, tiny=False):
    """Parameter count of a student's full-size (or tiny) model, built on the meta device."""
    return count_params(build_model(build_config(name, tiny), "meta", None))


def lora_settings(config_path):
    """config.yaml's `lora:` section (defaults: the paper config) and its largest grid rank."""
    settings = dict(LORA_DEFAULTS)
    try:
        import yaml

        settings.update((yaml.safe_load(Path(config_path).read_text()) or {}).get("lora") or {})
    except (OSError, ImportError) as e:
        print(f"gpu_check: {config_path} not read ({e}); using the paper's LoRA settings", file=sys.stderr)
    settings["rank"] = max(settings["ranks"])  # the grid's worst case for memory
    return settings


def default_students(settings):
    """The LoRA students first (config order), then the others by size: a budget cut drops the largest."""
    first = [m for m in settings["models"] if m in STUDENTS]
    return first + [m for m in STUDENTS if m not in first]


def random_ids(config, batch, length, device):
    """Token ids below every special/multimodal id (an image token would ask for pixels)."""
    import torch

    vocab = getattr(config, "text_config", config).vocab_size
    return torch.randint(3, min(vocab, 150000), (batch, length), device=device)


def _peaks(cuda):
    import torch

    if cuda:
        return torch.cuda.max_memory_allocated() / GIB, torch.cuda.max_memory_reserved() / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, None  # process max RSS


def _reset(cuda):
    import torch

    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _sync(cuda):
    import torch

    if cuda:
        torch.cuda.synchronize()


def train_steps(model, config, settings, checkpointing, cuda, bf16, deadline):
    """Warm-up step, then a timed step if the budget allows. Returns (seconds, timed, peak, reserved)
    or raises torch.cuda.OutOfMemoryError."""
    import torch

    base = model.get_base_model()
    if checkpointing:  # as Trainer does for train_lora (non-reentrant: no input-grad hook needed)
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_disable()
    device = "cuda" if cuda else "cpu"
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=cuda)
    ids = random_ids(config, settings["batch_size"], settings["max_length"], device)
    try:
        seconds = []
        for _ in range(2):
            _sync(cuda)
            start = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            del loss
            _sync(cuda)
            seconds.append(time.perf_counter() - start)
            if time.monotonic() + seconds[-1] > deadline:
                break
        return (seconds[-1], len(seconds) == 2, *_peaks(cuda))
    finally:
        del optimizer, ids


def measure_student(name, settings, tiny, cuda, deadline, info):
    """Two CSV rows (gradient checkpointing on, off) for one student."""
    import torch
    from peft import get_peft_model

    from .lora import MODULE_SETS, lora_config

    config = build_config(name, tiny)
    bf16 = bool(cuda and settings.get("bf16", True) is not False)
    _reset(cuda)
    model = build_model(config, "cuda" if cuda else "cpu", torch.bfloat16 if cuda else torch.float32)
    params = count_params(model)
    attn = getattr(model.config, "_attn_implementation", None)
    moe = STUDENTS[name]["family"] == "qwen3_moe"
    experts = getattr(model.config, "_experts_implementation", None) if moe else None
    model.config.use_cache = False
    try:
        peft_config, targets_note = lora_config(model.config, settings["rank"], modules=settings["modules"]), ""
    except ValueError:  # ConfigError: a family train_lora does not know (qwen3_moe), attention named as qwen3's
        peft_config = lora_config(SimpleNamespace(model_type="qwen3"), settings["rank"], modules=settings["modules"])
        targets_note = (f"; duomem.lora knows no LoRA targets for {model.config.model_type}: "
                        f"used qwen3's ({'/'.join(MODULE_SETS[settings['modules']])})")
    model = get_peft_model(model, peft_config)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rows, last = [], 0.0
    for checkpointing in (True, False):  # on first: it fits where "off" may not
        row = dict(info, kind="train", student=name, hub_path=STUDENTS[name]["path"],
                   arch_class=type(model.get_base_model()).__name__, params_b=f"{params / 1e9:.4g}",
                   lora_rank=settings["rank"], lora_params_m=f"{trainable / 1e6:.4g}",
                   micro_batch=settings["batch_size"], max_length=settings["max_length"],
                   gradient_checkpointing=checkpointing, bf16=bf16,
                   note=f"attn={attn}" + (f"; experts={experts}" if experts else "") + targets_note
                   + ("; tiny shapes" if tiny else "") + ("" if cuda else "; cpu: peak = process max RSS"))
        if time.monotonic() + last > deadline:  # "off" costs about what "on" did
            rows.append(dict(row, status="skipped: time budget"))
            continue
        oom, t0 = None, time.monotonic()
        _reset(cuda)
        try:
            seconds, timed, peak, reserved = train_steps(model, config, settings, checkpointing, cuda, bf16,
                                                         deadline)
        except torch.cuda.OutOfMemoryError as e:  # handled below, once the traceback's frames are gone
            oom = str(e).split("\n")[0][:160]
        last = time.monotonic() - t0
        if oom is not None:
            peak, reserved = _peaks(cuda)
            model.zero_grad(set_to_none=True)
            rows.append(dict(row, status="oom", peak_gib=f"{peak:.2f}",
                             peak_reserved_gib=f"{reserved:.2f}" if reserved is not None else "",
                             note=row["note"] + f"; peak at the failed allocation; {oom}"))
            _reset(cuda)
            continue
        rows.append(dict(row, status="ok", step_seconds=f"{seconds:.3f}", peak_gib=f"{peak:.2f}",
                         peak_reserved_gib=f"{reserved:.2f}" if reserved is not None else "",
                         note=row["note"] + ("" if timed else "; first step (warm-up included)")))
    del model
    _reset(cuda)
    return rows


def measure_generation(name, batch, prompt, new, tiny, cuda, info):
    """One batched greedy `generate` as the hf backend runs it (bf16 on CUDA, left-padded batch,
    adapter merged: so the plain base model), after a 2-token warm-up call."""
    import torch

    config = build_config(name, tiny)
    _reset(cuda)
    device = "cuda" if cuda else "cpu"
    model = build_model(config, device, torch.bfloat16 if cuda else torch.float32).eval()
    ids = random_ids(config, batch, prompt, device)
    mask = torch.ones_like(ids)
    kwargs = {"do_sample": False, "pad_token_id": 0, "eos_token_id": None}  # no early stop on random weights
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, **kwargs)
        _reset(cuda)
        start = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, **kwargs)
        _sync(cuda)
        seconds = time.perf_counter() - start
    made = (out.shape[1] - prompt) * batch
    peak, reserved = _peaks(cuda)
    row = dict(info, kind="generate", student=name, hub_path=STUDENTS[name]["path"],
               arch_class=type(model).__name__, params_b=f"{count_params(model) / 1e9:.4g}", micro_batch=batch,
               max_length=prompt + new, gradient_checkpointing="", bf16=cuda, step_seconds=f"{seconds:.3f}",
               peak_gib=f"{peak:.2f}", peak_reserved_gib=f"{reserved:.2f}" if reserved is not None else "",
               tokens_per_s=f"{made / seconds:.1f}", status="ok",
               note=f"{batch} prompts x {prompt} tokens, {new} new tokens each, greedy, prefill included; "
                    f"attn={getattr(model.config, '_attn_implementation', None)}" + ("; tiny shapes" if tiny else ""))
    del model, out, ids
    _reset(cuda)
    return row


def write_csv(path, rows):
    """Atomic: a reader (or a killed run) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m duomem.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/gpu_check.csv")
    p.add_argument("--students", nargs="+", choices=list(STUDENTS), help="default: all, LoRA students first")
    p.add_argument("--config", default=str(REPO / "config.yaml"), help="its `lora:` section sets the step")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke test)")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for the whole check (default 7.5 min)")
    p.add_argument("--gen-student", default="qwen3-4b-instruct", choices=list(STUDENTS))
    p.add_argument("--gen", type=int, nargs=3, metavar=("BATCH", "PROMPT", "NEW"), default=None,
                   help="generation shape (default 16 512 32; --tiny: 2 16 4)")
    args = p.parse_args(argv)
    started = time.monotonic()
    deadline = started + args.budget

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        p.error("no CUDA device: full-size shapes need a GPU (use --tiny for the CPU smoke test)")
    import peft
    import transformers

    settings = lora_settings(args.config)
    if args.tiny:
        settings["max_length"] = min(settings["max_length"], 64)
        torch.set_num_threads(1)  # tiny matmuls: more threads only contend with the machine's other work
    torch.manual_seed(0)
    device = (f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / GIB:.1f} GiB)"
              if cuda else "cpu")
    info = {"device": device, "software": f"torch {torch.__version__}; transformers {transformers.__version__}; "
                                          f"peft {peft.__version__}"}
    students = args.students or default_students(settings)
    batch, prompt, new = args.gen or ((2, 16, 4) if args.tiny else (16, 512, 32))
    try:
        rows = [measure_generation(args.gen_student, batch, prompt, new, args.tiny, cuda, info)]
    except Exception as e:  # noqa: BLE001 - the training rows are still worth having
        if args.tiny:
            raise
        rows = [dict(info, kind="generate", student=args.gen_student, hub_path=STUDENTS[args.gen_student]["path"],
                     status=f"error: {type(e).__name__}", note=str(e).split("\n")[0][:200])]
        _reset(cuda)
    print(f"gpu_check: generate {args.gen_student}: {rows[0]['status']} {rows[0].get('tokens_per_s', '')} tokens/s "
          f"{rows[0].get('peak_gib', '')} GiB", file=sys.stderr, flush=True)
    write_csv(args.out, rows)
    seconds_per_param, measured = 0.0, {}  # rate of the last student measured (larger ones amortise start-up)
    for name in students:
        same = STUDENTS[name].get("same_as")
        if same in measured:  # identical shapes: the numbers are the twin's
            rows += [dict(r, student=name, hub_path=STUDENTS[name]["path"],
                          note=f"same shapes as {same}: its measurement; " + r["note"]) for r in measured[same]]
            write_csv(args.out, rows)
            continue
        params = meta_params(name, args.tiny)
        predicted = seconds_per_param * params  # build + up to 4 steps, scaled by parameter count
        if time.monotonic() + predicted > deadline:
            skipped = dict(info, kind="train", student=name, hub_path=STUDENTS[name]["path"],
                           params_b=f"{params / 1e9:.4g}", status="skipped: time budget",
                           note=f"predicted {predicted:.0f} s, {deadline - time.monotonic():.0f} s left")
            rows += [dict(skipped, gradient_checkpointing=c) for c in (True, False)]
        else:
            t0 = time.monotonic()
            try:
                measured[name] = measure_student(name, settings, args.tiny, cuda, deadline, info)
            except Exception as e:  # noqa: BLE001 - one student's failure must not lose the others
                if args.tiny:
                    raise
                measured[name] = [dict(info, kind="train", student=name, hub_path=STUDENTS[name]["path"],
                                       gradient_checkpointing=c, status=f"error: {type(e).__name__}",
                                       note=str(e).split("\n")[0][:200]) for c in (True, False)]
                _reset(cuda)
            seconds_per_param = (time.monotonic() - t0) / params
            rows += measured[name]
        for r in rows[-2:]:
            print(f"gpu_check: {r['student']} checkpointing={r['gradient_checkpointing']}: {r['status']} "
                  f"{r.get('step_seconds', '')} s {r.get('peak_gib', '')} GiB", file=sys.stderr, flush=True)
        write_csv(args.out, rows)
    print(f"gpu_check: wrote {args.out} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
