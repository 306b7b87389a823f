import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from duomem.config_check import ConfigError
from duomem.lora import adapter_dir, encode_sft, lr_label, target_modules, train_lora, trained_positions_loss
from duomem.sft import IGNORE_INDEX, build_sft_dataset, read_sft

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
REPO = Path(__file__).resolve().parents[1]
FAST = dict(rank=4, lr=1e-3, batch_size=2, grad_accum=1, logging_steps=1, checkpoint_steps=100, progress=False)


def trajectory(n, steps):
    msgs = [{"role": "user", "content": f"You are in room {n}.\n\nYour task is to: put a mug in cabinet."}]
    for s in range(1, steps + 1):
        msgs += [{"role": "assistant", "content": f"Thought: try cabinet {s}.\nAction: go to cabinet {s}"},
                 {"role": "user", "content": f"You arrive at cabinet {s}."}]
    return {"trajectory_id": f"t{n}#a1", "task_id": f"t{n}", "task_type": "pick_and_place_simple", "messages": msgs}


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft")
    (d / "train.jsonl").write_text("".join(json.dumps(trajectory(n, 3)) + "\n" for n in range(3)))
    build_sft_dataset(d / "train.jsonl", d / "latest.jsonl", "latest")  # 9 samples
    return d / "latest.jsonl"


@pytest.fixture(scope="module")
def trained(tiny_model_dir, sft_file, tmp_path_factory):
    out = adapter_dir(tmp_path_factory.mktemp("lora"), "tiny", "latest", 4, 1e-3)
    summary = train_lora(tiny_model_dir, sft_file, out, **FAST)
    return out, summary


def test_output_folder(trained):
    out, summary = trained
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "train_summary.json", "trainer_log.json"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # temp and work folders gone
    assert json.loads((out / "train_summary.json").read_text()) == summary
    assert summary["alpha"] == 8 and summary["rank"] == 4 and summary["lr_label"] == "1e-03"
    assert summary["samples"] == 9 and summary["steps"] == 5 and summary["resumed_from_step"] == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8
    assert config["target_modules"] == sorted(summary["target_modules"])  # sorted: byte-reproducible


def test_gradient_checkpointing_and_bf16_reach_the_trainer(tiny_model_dir, sft_file, trained, tmp_path):
    """The paper config's GPU settings (issue 14 item 4), here on the CPU: bf16 autocast and
    recomputed activations train the same adapter shape; "auto" turns both off without a GPU."""
    import torch

    _, plain = trained
    assert plain["mixed_precision"] == "no" and plain["gradient_checkpointing"] is False  # auto, no GPU
    summary = train_lora(tiny_model_dir, sft_file, tmp_path / "a", **{**FAST, "gradient_checkpointing": True,
                                                                      "bf16": True})
    assert summary["mixed_precision"] == "bf16" and summary["gradient_checkpointing"] is True
    assert (plain["dtype"], summary["dtype"]) == ("float32", "bfloat16")  # bf16 base weights, fp32 adapter
    from safetensors.torch import load_file
    assert {t.dtype for t in load_file(tmp_path / "a" / "adapter_model.safetensors").values()} == {torch.float32}
    assert summary["steps"] == plain["steps"] and all(0 < e["loss"] < 20 for e in
                                                      json.loads((tmp_path / "a" / "trainer_log.json").read_text())["loss_curve"])
    with pytest.raises(ConfigError, match="bf16 must be auto, true or false"):
        train_lora(tiny_model_dir, sft_file, tmp_path / "b", **{**FAST, "bf16": "yes"})


def test_learning_curve_points_are_the_adapter_after_n_samples(tiny_model_dir, sft_file, trained, tmp_path):
    """lora.curve: the adapter after the first N samples of the pass, inside the adapter's folder.
    The last point of a constant-lr run is the whole adapter; an earlier one differs from it."""
    from safetensors.torch import load_file

    out = tmp_path / "curve-run"
    summary = train_lora(tiny_model_dir, sft_file, out, **{**FAST, "curve": [4, 2], "scheduler": "constant"})
    assert summary["curve"] == [2, 4] and summary["tokens_per_second"] > 0 and summary["total_tokens"] > 0
    points = {p.name: json.loads((p / "curve_point.json").read_text()) for p in (out / "curve").iterdir()}
    assert points == {"n2": {"samples": 2, "step": 1}, "n4": {"samples": 4, "step": 2}}  # 2 samples a step
    weights = {n: load_file(str(out / "curve" / n / "adapter_model.safetensors")) for n in points}
    final = load_file(str(out / "adapter_model.safetensors"))
    assert any((weights["n2"][k] != weights["n4"][k]).any() for k in final)
    assert any((weights["n4"][k] != final[k]).any() for k in final)
    with pytest.raises(ConfigError, match="learning-curve point 9 is not below the 9 training samples"):
        train_lora(tiny_model_dir, sft_file, tmp_path / "x", **{**FAST, "curve": [9]})


def test_warmup_stable_decay_holds_the_rate_then_anneals_it(tiny_model_dir, sft_file, tmp_path):
    """lora.scheduler warmup_stable_decay: constant after warm-up, then linearly down over the last
    decay_ratio of the steps (here 2 of 5); curve points before the fall keep their meaning."""
    out = tmp_path / "wsd"
    summary = train_lora(tiny_model_dir, sft_file, out, **{**FAST, "scheduler": "warmup_stable_decay",
                                                           "decay_ratio": 0.4, "warmup_ratio": 0, "curve": [4]})
    rates = [e["learning_rate"] for e in json.loads((out / "trainer_log.json").read_text())["loss_curve"]]
    # 3 stable steps, then 2 decay steps at 1 - 0/2 and 1 - 1/2 of lr (transformers' linear decay
    # starts from the full rate); a constant schedule would log 1e-3 five times
    assert rates == [pytest.approx(r) for r in (1e-3, 1e-3, 1e-3, 1e-3, 0.5e-3)]
    assert summary["curve"] == [4]
    with pytest.raises(ConfigError, match=r"decay_ratio must be a number in \(0, 1\]"):
        train_lora(tiny_model_dir, sft_file, tmp_path / "x", **{**FAST, "scheduler": "warmup_stable_decay",
                                                                "decay_ratio": 0})


def test_loss_curve_has_an_entry_per_logging_step(trained):
    out, summary = trained
    log = json.loads((out / "trainer_log.json").read_text())
    assert [e["step"] for e in log["loss_curve"]] == [1, 2, 3, 4, 5]
    assert all(e["loss"] > 0 for e in log["loss_curve"]) and summary["final_loss"] == log["loss_curve"][-1]["loss"]


def analytic_count(c, r, mlp):
    """LoRA on a Linear(n_in, n_out) adds A (r x n_in) and B (n_out x r)."""
    h, i = c.hidden_size, c.intermediate_size
    head = getattr(c, "head_dim", None) or h // c.num_attention_heads
    q, kv = c.num_attention_heads * head, c.num_key_value_heads * head
    shapes = [(h, q), (h, kv), (h, kv), (q, h)] + ([(h, i), (h, i), (i, h)] if mlp else [])
    return c.num_hidden_layers * sum(r * (a + b) for a, b in shapes)


def test_trainable_parameters_match_the_lora_formula(trained, tiny_model_dir, sft_file, tmp_path):
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(tiny_model_dir)
    assert trained[1]["trainable_params"] == analytic_count(c, 4, mlp=False)
    assert trained[1]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    mlp = train_lora(tiny_model_dir, sft_file, tmp_path / "mlp", **dict(FAST, max_samples=1, modules="attention_mlp"))
    assert mlp["trainable_params"] == analytic_count(c, 4, mlp=True)


def test_top_layers_adapts_only_the_upper_layers(tiny_model_dir, sft_file, tmp_path):
    """lora.top_layers: LoRA on the top N decoder layers only (the lower ones then run forward only);
    lora.dropout 0 reaches peft. Too many layers is refused naming the model's count."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(tiny_model_dir)
    top = c.num_hidden_layers - 1
    s = train_lora(tiny_model_dir, sft_file, tmp_path / "top", **dict(FAST, max_samples=2, top_layers=1, dropout=0.0))
    assert s["adapted_layers"] == [top] and s["top_layers"] == 1
    assert s["trainable_params"] == analytic_count(c, 4, mlp=False) // c.num_hidden_layers
    keys = load_file(tmp_path / "top" / "adapter_model.safetensors")
    assert keys and all(f"layers.{top}." in k for k in keys)
    config = json.loads((tmp_path / "top" / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [top] and config["lora_dropout"] == 0.0
    with pytest.raises(ConfigError, match=f"between 1 and the model's {c.num_hidden_layers} layers"):
        train_lora(tiny_model_dir, sft_file, tmp_path / "too-many", **dict(FAST, top_layers=c.num_hidden_layers + 1))


def test_qwen3_4b_rank8_has_the_papers_5_9m_parameters():
    """§5.2: "Qwen3-4B-Instruct with rank r=8 adds 5.9M parameters (<0.15% of the 4B backbone)"."""
    import torch
    from peft import get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from duomem.lora import lora_config

    c = Qwen3Config(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True)
    with torch.device("meta"):  # shapes only, no memory
        model = get_peft_model(Qwen3ForCausalLM(c), lora_config(c, rank=8))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable == analytic_count(c, 8, mlp=False) == 5_898_240 and trainable / total < 0.0015


def test_adapter_loads_and_changes_logits(trained, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = trained
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        before = base(ids).logits
        after = PeftModel.from_pretrained(base, out).eval()(ids).logits
    assert (after - before).abs().max() > 1e-5


def test_labels_only_on_assistant_tokens(tiny_model_dir, sft_file):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = read_sft(sft_file)
    examples, counts = encode_sft(tok, records, max_length=4096)
    for r, ex in zip(records, examples):
        trained = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE_INDEX]
        assert tok.decode(trained) == r["messages"][-1]["content"] + "<|im_end|>"
    assert counts["trained_tokens"] == sum(sum(lab != IGNORE_INDEX for lab in e["labels"]) for e in examples)
    # too short for any sample's target: cut on the right, then dropped
    short, counts = encode_sft(tok, records, max_length=50)
    assert short == [] and counts["samples_dropped"] == counts["samples_truncated"] == 9


def test_trained_positions_loss_is_the_models_own_loss(tiny_model_dir, sft_file):
    # Logits only where a trained token is predicted: the same loss (and gradient) as the model's
    # loss over all positions, for a padded batch, with and without the Trainer's token count.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, _ = encode_sft(tok, read_sft(sft_file)[:3], max_length=4096)
    batch = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=IGNORE_INDEX)(examples)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    own = model(**batch).loss
    (own_grad,) = torch.autograd.grad(own, model.lm_head.weight)
    loss, outputs = trained_positions_loss(model, batch)
    (grad,) = torch.autograd.grad(loss, model.lm_head.weight)
    trained = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert torch.allclose(loss, own, atol=1e-5) and torch.allclose(grad, own_grad, atol=1e-6)
    # fewer rows than positions went through the vocabulary projection
    assert outputs.logits.shape[1] < batch["input_ids"].shape[1]
    summed, _ = trained_positions_loss(model, batch, num_items_in_batch=2 * trained)
    assert torch.allclose(summed, own / 2, atol=1e-5)
    assert "labels" in batch  # the caller's inputs are left as they were


def test_resume_after_kill(tiny_model_dir, sft_file, tmp_path):
    out = tmp_path / "r4_lr1e-03"
    kwargs = dict(FAST, batch_size=1, checkpoint_steps=1)
    # The child announces each checkpoint and stalls at the third, so the kill lands at a known step.
    child = textwrap.dedent(f"""
        import sys, time
        from transformers import TrainerCallback
        from duomem.lora import train_lora

        class Stall(TrainerCallback):
            def on_save(self, args, state, control, **kw):
                print("SAVED", state.global_step, flush=True)
                if state.global_step == 3:
                    time.sleep(600)

        train_lora({str(tiny_model_dir)!r}, {str(sft_file)!r}, {str(out)!r}, callbacks=[Stall()], **{kwargs!r})
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith("SAVED 3"):
                break
        else:
            pytest.fail(f"the training child ended (rc {proc.wait()}) before its third checkpoint")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    work = tmp_path / f".{out.name}.work"
    assert not out.exists() and (work / "checkpoint-3" / "trainer_state.json").exists()

    summary = train_lora(tiny_model_dir, sft_file, out, **kwargs)
    assert summary["resumed_from_step"] == 3 and summary["steps"] == 9
    log = json.loads((out / "trainer_log.json").read_text())
    assert [e["step"] for e in log["loss_curve"]] == list(range(1, 10))  # steps 1-3 come from the checkpoint
    assert (out / "adapter_model.safetensors").exists() and not work.exists()


def test_checkpoints_of_other_settings_are_not_resumed(tiny_model_dir, sft_file, tmp_path):
    out = tmp_path / "adapter"
    stale = tmp_path / ".adapter.work" / "checkpoint-7"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{}")
    (tmp_path / ".adapter.work" / "settings.json").write_text('{"rank": 99}')
    summary = train_lora(tiny_model_dir, sft_file, out, **dict(FAST, max_samples=2))
    assert summary["resumed_from_step"] == 0 and summary["samples"] == 2 and summary["steps"] == 1


@pytest.mark.parametrize("bad, name", [
    (dict(rank=0), "rank"), (dict(rank=-2), "rank"), (dict(rank=2.5), "rank"),
    (dict(lr=0), "lr"), (dict(lr=-1e-5), "lr"), (dict(lr="fast"), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(alpha=0), "alpha"), (dict(batch_size=0), "batch_size"), (dict(max_samples=0), "max_samples"),
    (dict(modules="all"), "modules"), (dict(top_layers=0), "top_layers"), (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
])
def test_bad_arguments(tmp_path, bad, name):
    args = dict(FAST, **bad)
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        train_lora(tmp_path / "model", tmp_path / "sft.jsonl", tmp_path / "out", **args)
    assert not any(tmp_path.iterdir())


def test_lr_labels_and_adapter_dir():
    assert lr_label(5e-05) == lr_label(0.00005) == lr_label("5e-5") == "5e-05"
    assert [lr_label(x) for x in (1e-6, 5e-6, 1e-5, 5e-5)] == ["1e-06", "5e-06", "1e-05", "5e-05"]
    assert lr_label(2.5e-5) == "2.5e-05" and float(lr_label(2.5e-5)) == 2.5e-5
    assert adapter_dir("results/lora", "qwen3-4b-instruct", "full", 8, 5e-5) == Path(
        "results/lora/qwen3-4b-instruct/full/r8_lr5e-05")
    with pytest.raises(ConfigError, match="full, latest, last5"):
        adapter_dir("results/lora", "m", "all", 8, 5e-5)


def test_target_modules_by_family():
    from types import SimpleNamespace as NS

    assert target_modules(NS(model_type="qwen3")) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert target_modules(NS(model_type="llama"), "attention_mlp") == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert target_modules(NS(model_type="gemma3")).startswith(".*language_model")
    with pytest.raises(ConfigError, match="'gpt2'.*known: llama"):
        target_modules(NS(model_type="gpt2"))


def test_multimodal_gemma_adapts_the_language_model_only():
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, Gemma3Config

    from duomem.lora import lora_config

    c = Gemma3Config(
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, vocab_size=300),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=28, patch_size=14), mm_tokens_per_image=4)
    with torch.device("meta"):
        model = get_peft_model(AutoModelForCausalLM.from_config(c), lora_config(c, rank=2))
    adapted = [n for n, _ in model.named_modules() if n.endswith("lora_A")]
    assert len(adapted) == 2 * 4 and all(".language_model." in n for n in adapted)  # no vision q_proj


def test_a_torn_or_unfinished_checkpoint_is_never_resumed(tmp_path):
    from duomem.lora import _last_checkpoint

    for step, state in ((1, '{"global_step": 1}'), (2, '{"global_st'), (3, None)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if state is not None:  # Trainer writes trainer_state.json last, not atomically
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-1")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-1"]


def test_prompt_without_grad_keeps_the_loss(tiny_model_dir, sft_file):
    # lora.prompt_grad: false runs the prompt before the first trained token without autograd and the
    # rest on its cached keys and values: the same loss for a padded batch, a gradient that still
    # reaches the adapter, and the prompt's positions left out of the backward pass.
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq

    from duomem.lora import lora_config

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, _ = encode_sft(tok, read_sft(sft_file)[:3], max_length=4096)
    batch = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=IGNORE_INDEX)(examples)
    first = int((batch["labels"][:, 1:] != IGNORE_INDEX).any(0).nonzero()[0])
    assert first > 10  # the samples do have a prompt before their first trained token
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, lora_config(base.config, 4, dropout=0.0, modules="attention_mlp"))
    for name, p in model.named_parameters():  # B = 0 at initialisation would hide the prompt's path
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    lora = [p for n, p in model.named_parameters() if p.requires_grad]
    full, _ = trained_positions_loss(model, batch)
    cut, outputs = trained_positions_loss(model, batch, prompt_grad=False)
    assert torch.allclose(cut, full, atol=1e-5)
    assert outputs.logits.shape[1] == int((batch["labels"][:, 1:] != IGNORE_INDEX).any(0).sum())
    g_full = torch.autograd.grad(full, lora)
    g_cut = torch.autograd.grad(cut, lora)
    assert all(g.abs().sum() > 0 for g in g_cut)
    assert not all(torch.allclose(a, b, atol=1e-7) for a, b in zip(g_full, g_cut))
    with pytest.raises(ConfigError, match="prompt_grad"):
        train_lora(tiny_model_dir, sft_file, "/nonexistent/x", rank=4, lr=1e-3, prompt_grad="no")
