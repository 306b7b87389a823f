"""The vllm backend and Qwen3 thinking handling, without a GPU.

vLLM cannot be installed here, so a small stand-in `vllm` module goes into sys.modules: its classes
record the arguments the backend gives them, and `LLM.chat` answers from scripted text or from the
real SmolLM2 (transformers' greedy `generate`). What runs is the backend's own logic: engine
arguments, batching, sampling parameters, LoRA requests, thinking and the cut after the action line.
"""

import json
import re
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from duomem.agent import run_episodes
from duomem.config_check import ConfigError, check_all
from duomem.data import build_manifest
from duomem.env import EnvPool
from duomem.policies import make_policy, policy_from_params
from duomem.policies.hf import _StopAfterAction, action_line_ended
from duomem.policies.kv import KVEngine
from duomem.policies.thinking import answer_text, opens_thinking, split_thinking
from duomem.policies.base import cut_after_action
from duomem.policies.vllm_backend import ENGINE_PARAMS
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


# ---- the stand-in vllm module ----

class _SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class _LoRARequest:
    def __init__(self, lora_name, lora_int_id, lora_path=""):
        if lora_int_id < 1 or not lora_path:  # vLLM's own checks
            raise ValueError("lora_int_id must be > 0 and lora_path set")
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path


class _LLM:
    """Records its engine arguments and every chat call; answers with `respond(conversation, params)`
    (text, or (text, token_ids)), or, when none is set, greedily from the model folder it was given."""

    instances, respond = [], None

    def __init__(self, model, **kwargs):
        self.model, self.kwargs, self.calls = model, kwargs, []
        self.hf = None
        _LLM.instances.append(self)

    def get_tokenizer(self):
        if not Path(self.model).is_dir():
            raise RuntimeError("the stand-in has no tokenizer for a hub id")
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model)

    def chat(self, messages, sampling_params=None, use_tqdm=True, lora_request=None, chat_template_kwargs=None):
        self.calls.append({"messages": [[dict(m) for m in c] for c in messages], "params": sampling_params,
                           "lora_request": lora_request, "chat_template_kwargs": chat_template_kwargs,
                           "use_tqdm": use_tqdm})
        out = []
        for conv in messages:
            if _LLM.respond is not None:
                text = _LLM.respond(conv, sampling_params)
                text, ids = text if isinstance(text, tuple) else (text, text.split())
                prompt = sum(len(m["content"].split()) for m in conv)
            else:
                text, ids, prompt = self._generate(conv, sampling_params, chat_template_kwargs)
            out.append(types.SimpleNamespace(prompt_token_ids=list(range(prompt)),
                                             outputs=[types.SimpleNamespace(text=text, token_ids=list(ids))]))
        return out

    def _generate(self, conv, params, template_kwargs):
        from transformers import AutoModelForCausalLM

        tok = self.get_tokenizer()
        if self.hf is None:
            self.hf = AutoModelForCausalLM.from_pretrained(self.model).eval()
        prompt = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True, **(template_kwargs or {}))
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        assert params.temperature == 0.0
        with torch.inference_mode():
            gen = self.hf.generate(ids, max_new_tokens=params.max_tokens, do_sample=False,
                                   pad_token_id=tok.pad_token_id or tok.eos_token_id)[0, ids.shape[1]:]
        return tok.decode(gen, skip_special_tokens=True), gen.tolist(), ids.shape[1]


@pytest.fixture
def vllm_stub(monkeypatch):
    vllm = types.ModuleType("vllm")
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    vllm.LLM, vllm.SamplingParams, request.LoRARequest = _LLM, _SamplingParams, _LoRARequest
    vllm.lora, lora.request = lora, request
    for name, mod in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(_LLM, "instances", [])
    monkeypatch.setattr(_LLM, "respond", None)
    return _LLM


def rule_params(**over):
    """The flat parameters an evaluate job gets for a vllm model (names as in POLICY_PARAMS)."""
    p = dict(backend="vllm", path="Qwen/Qwen3-8B", base_url="", served_name="", api_key_env="OPENAI_API_KEY",
             concurrency=8, thinking=None, temperature=0.0, batch_size=16, seed=0, max_new_tokens=64,
             tensor_parallel_size=2, max_model_len=16384, gpu_memory_utilization=0.85, max_lora_rank=32,
             max_loras=4, enable_prefix_caching=True, vllm_dtype="bfloat16")
    p.update(over)
    return p


def adapter_dir(root, name, rank):
    d = Path(root) / name
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank}))
    return d


def conversations():
    return [initial_conversation(OBS.format(task=t)) for t in
            ("put a clean apple in fridge", "examine the book with the desklamp", "heat some egg")]


def scripted(conv, params):
    """Answer with the conversation's task, a thinking block with a decoy action, and a runaway tail."""
    task = conv[-1]["content"].rsplit("Your task is to: ", 1)[-1].rstrip(".")
    return (f"<think>\nMaybe inventory first.\nAction: inventory\n</think>\n\nThought: I need to {task}.\n"
            "Action: go to desk 1\nObservation: You arrive at desk 1.")


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


class _ScriptedLM(torch.nn.Module):
    """A stand-in causal LM for the KV engine: it writes `script` (token ids) after any prompt.
    Prefill calls come without an attention mask; the prompt's last position anchors the script."""

    def __init__(self, script, vocab):
        super().__init__()
        self.script, self.vocab, self.anchor = script, vocab, 0
        self.w = torch.nn.Parameter(torch.zeros(1))
        text = types.SimpleNamespace(num_key_value_heads=1, head_dim=1, num_attention_heads=1, hidden_size=1,
                                     num_hidden_layers=1)
        self.config = types.SimpleNamespace(get_text_config=lambda: text)

    def forward(self, input_ids, position_ids, past_key_values, attention_mask=None, **kwargs):
        b, m = input_ids.shape
        past_key_values.layers[0].update(torch.zeros(b, 1, m, 1), torch.zeros(b, 1, m, 1))
        last = position_ids[:, -1]
        if attention_mask is None:
            self.anchor = int(last[0])
        logits = torch.zeros(b, 1, self.vocab)
        for row, pos in enumerate(last.tolist()):
            logits[row, 0, self.script[min(pos - self.anchor, len(self.script) - 1)]] = 1.0
        return types.SimpleNamespace(logits=logits)


def test_hf_kv_path_keeps_thinking_out_of_the_answer(template_dirs):
    policy = make_policy("hf", path=template_dirs["thinking"], threads=1, max_new_tokens=64)
    tok = policy.tokenizer
    text = ("Search first.\nAction: inventory\nThen the desk.</think>\n\nThought: the desk.\n"
            "Action: go to desk 1\nObservation: made up")
    script = tok(text, add_special_tokens=False)["input_ids"]
    model = _ScriptedLM(script, len(tok))
    policy.model, policy.engine = model, KVEngine(model, {tok.eos_token_id}, 64)
    out = policy.act([initial_conversation(OBS.format(task="heat some egg"))])[0]
    assert out.text == "Thought: the desk.\nAction: go to desk 1"     # stopped after the answer's action
    assert out.thinking == "Search first.\nAction: inventory\nThen the desk."
    stop_at = next(i for i in range(1, len(script) + 1)
                   if action_line_ended(answer_text(tok.decode(script[:i]), True)))
    assert out.completion_tokens == stop_at > len(tok("Search first.\nAction: inventory\n")["input_ids"])


# ---- the vllm backend ----

def test_engine_params_match_the_rule_params():
    block = (REPO / "rules" / "common.smk").read_text().split("POLICY_PARAMS = dict(", 1)[1].split("\n)", 1)[0]
    assert set(ENGINE_PARAMS) <= set(re.findall(r"^\s+(\w+)=", block, re.MULTILINE))


def test_engine_arguments_from_rule_params(vllm_stub, tmp_path):
    policy = policy_from_params(rule_params())
    (llm,) = vllm_stub.instances
    assert llm.model == "Qwen/Qwen3-8B" and policy.llm is llm
    assert llm.kwargs == {"seed": 0, "tensor_parallel_size": 2, "max_model_len": 16384,
                          "gpu_memory_utilization": 0.85, "dtype": "bfloat16", "enable_prefix_caching": True,
                          "enable_lora": False}  # no adapter: no LoRA machinery in the engine
    folder = adapter_dir(tmp_path, "r8", 8)
    policy_from_params(rule_params(max_model_len=None, vllm_dtype="auto", seed=3), adapter=folder,
                       adapter_name="full-r8-lr1e-05")
    lora = vllm_stub.instances[-1].kwargs
    assert lora["enable_lora"] and lora["max_lora_rank"] == 32 and lora["max_loras"] == 4
    assert "max_model_len" not in lora and lora["dtype"] == "auto" and lora["seed"] == 3


def test_one_chat_call_per_act_in_order_and_greedy(vllm_stub):
    vllm_stub.respond = scripted
    policy = policy_from_params(rule_params(max_new_tokens=77))
    convs = conversations()
    out = policy.act(convs)
    (call,) = vllm_stub.instances[0].calls
    assert call["messages"] == convs and call["use_tqdm"] is False
    assert [c.text.split("\n")[0] for c in out] == [
        "Thought: I need to put a clean apple in fridge.", "Thought: I need to examine the book with the desklamp.",
        "Thought: I need to heat some egg."]
    # The runaway tail after the action line is cut; the thinking block is kept apart.
    assert all(c.text.endswith("Action: go to desk 1") and c.thinking.startswith("Maybe inventory") for c in out)
    p = call["params"]
    assert (p.n, p.temperature, p.seed, p.max_tokens, p.stop) == (1, 0.0, None, 77, None)
    raw = scripted(convs[0], p)
    assert out[0].completion_tokens == len(raw.split())  # thinking and tail included
    assert out[0].prompt_tokens == sum(len(m["content"].split()) for m in convs[0])
    assert call["lora_request"] is None and call["chat_template_kwargs"] is None
    assert policy.act([]) == [] and len(vllm_stub.instances[0].calls) == 1


def test_sampling_is_seeded_per_conversation_and_stop_strings_pass_through(vllm_stub):
    vllm_stub.respond = scripted
    convs = conversations()
    policy = make_policy("vllm", path="m", max_tokens=9, temperature=0.7, seed=5, stop=["\nObservation:"])
    policy.act(convs)
    policy.act([convs[2], convs[0]])  # another batch: each conversation keeps its seed
    make_policy("vllm", path="m", max_tokens=9, temperature=0.7, seed=6).act(convs[:1])
    first, second = (c["params"] for c in vllm_stub.instances[0].calls)
    assert all((p.temperature, p.max_tokens, p.stop) == (0.7, 9, ["\nObservation:"]) for p in first)
    seeds = [p.seed for p in first]
    assert len(set(seeds)) == 3 and all(isinstance(s, int) and s >= 0 for s in seeds)
    assert [p.seed for p in second] == [seeds[2], seeds[0]]
    assert vllm_stub.instances[1].calls[0]["params"][0].seed != seeds[0]  # the config's seed matters


def test_cut_after_action_is_the_hf_stop_rule():
    texts = ["Thought: go.\nAction: go to desk 1\nObservation: x", "Action:\n  look\nmore", "ACTION: open fridge 1",
             "Thought: no action here\nnothing", "Thought: t\nAction: take apple 1 from desk 1\n\nAction: look\n",
             "Action:   \n\n", "prose only"]
    for text in texts:
        # hf stops at the first prefix whose action line has ended; vllm cuts the whole text there.
        ended = next((text[:i] for i in range(1, len(text) + 1) if action_line_ended(text[:i])), text)
        assert cut_after_action(text) == ended.strip(), text


def test_lora_requests_stable_ids_several_adapters_and_base(vllm_stub, tmp_path):
    vllm_stub.respond = scripted
    a, b = adapter_dir(tmp_path, "a", 8), adapter_dir(tmp_path, "b", 16)
    policy = make_policy("vllm", path="m", adapters={"r8": a, "r16": b}, max_lora_rank=32, max_loras=2)
    llm = vllm_stub.instances[0]
    assert llm.kwargs["enable_lora"] and llm.kwargs["max_lora_rank"] == 32
    r8, r16 = policy.lora_request("r8"), policy.lora_request("r16")
    assert (r8.lora_int_id, r8.lora_name, r8.lora_path) == (1, "r8", str(a.resolve()))
    assert (r16.lora_int_id, r16.lora_path) == (2, str(b.resolve()))
    assert policy.add_adapter("r8", a) is r8  # the same folder keeps its request and id
    with pytest.raises(ValueError, match="already names"):
        policy.add_adapter("r8", b)
    with pytest.raises(KeyError, match="not registered"):
        policy.lora_request("r32")

    convs = conversations()
    policy.act(convs, adapters=["r8", None, "r16"])
    policy.act(convs)  # no default adapter: the base model
    policy.view("r16").act(convs[:2])  # another adapter on the same engine
    policy.act(convs, adapters=["r8", "r8", "r8"])
    calls = llm.calls
    assert calls[0]["lora_request"] == [r8, None, r16]
    assert calls[1]["lora_request"] is None
    assert calls[2]["lora_request"] is r16 and calls[3]["lora_request"] is r8
    assert len(vllm_stub.instances) == 1


def test_adapter_from_rule_params_and_rank_limit(vllm_stub, tmp_path):
    vllm_stub.respond = scripted
    folder = adapter_dir(tmp_path, "sel", 16)
    policy = policy_from_params(rule_params(), adapter=folder, adapter_name="lora")
    policy.act(conversations()[:2])
    req = vllm_stub.instances[0].calls[0]["lora_request"]
    assert (req.lora_name, req.lora_int_id, req.lora_path) == ("lora", 1, str(folder.resolve()))
    assert policy.describe()["adapter"] == "lora"
    with pytest.raises(ValueError, match="rank 64 > vllm max_lora_rank 32"):
        policy_from_params(rule_params(), adapter=adapter_dir(tmp_path, "big", 64), adapter_name="big")


@pytest.mark.parametrize("thinking,kwargs", [(None, None), (True, {"enable_thinking": True}),
                                             (False, {"enable_thinking": False})])
def test_thinking_mode_reaches_the_chat_template(vllm_stub, thinking, kwargs):
    vllm_stub.respond = scripted
    policy_from_params(rule_params(thinking=thinking)).act(conversations()[:1])
    assert vllm_stub.instances[0].calls[0]["chat_template_kwargs"] == kwargs


def test_vllm_thinking_2507_output_without_opening_tag(vllm_stub, template_dirs):
    policy = make_policy("vllm", path=str(template_dirs["thinking"]), max_tokens=64)
    assert policy.starts_thinking
    vllm_stub.respond = lambda conv, p: "Plan.\nAction: inventory\n</think>\n\nThought: t\nAction: look\nmore"
    out = policy.act(conversations()[:1])[0]
    assert (out.thinking, out.text) == ("Plan.\nAction: inventory", "Thought: t\nAction: look")
    vllm_stub.respond = lambda conv, p: "Still planning.\nAction: inventory\n"  # cut off by max_tokens
    out = policy.act(conversations()[:1])[0]
    assert (out.thinking, out.text) == ("Still planning.\nAction: inventory", "")
    assert not make_policy("vllm", path=str(template_dirs["hybrid"]),
                           chat_template_kwargs={"enable_thinking": True}).starts_thinking


def test_vllm_text_equals_hf_on_the_real_model(vllm_stub, smollm2_dir):
    # The stand-in generates with the real SmolLM2 up to max_tokens; the backend's cut after the action
    # line must give what the hf backend's stop criterion gives.
    refs = load_references()
    convs = [initial_conversation(OBS.format(task=task), refs[kind]) for task, kind in
             (("put a clean apple in fridge", "pick_clean_then_place_in_recep"),
              ("heat some egg", "pick_heat_then_place_in_recep"))]
    hf = make_policy("hf", path=smollm2_dir, threads=2, batch_size=2, max_new_tokens=32).act(convs)
    out = make_policy("vllm", path=str(smollm2_dir), max_tokens=32).act(convs)
    assert [c.text for c in out] == [c.text for c in hf]
    assert all(re.search(r"\nAction: \w", c.text) for c in out)  # the reference taught it the format
    assert [c.prompt_tokens for c in out] == [c.prompt_tokens for c in hf]
    assert all(v.completion_tokens >= h.completion_tokens for v, h in zip(out, hf))


def test_episode_on_real_games_keeps_thinking_out_of_history(vllm_stub, data_root):
    def respond(conv, params):
        action = ("look", "inventory")[sum(m["role"] == "assistant" for m in conv) % 2]
        return (f"<think>\nDecoy.\nAction: examine desk 1\n</think>\n\nThought: step.\nAction: {action}\n"
                "Observation: made up")

    vllm_stub.respond = respond
    tasks = build_manifest(data_root, "valid_unseen", per_task_type=1, seed=3)[:2]
    policy = make_policy("vllm", path="Qwen/Qwen3-8B", max_tokens=64, chat_template_kwargs={"enable_thinking": True})
    with EnvPool(2, max_steps=3) as pool:
        records = run_episodes(tasks, policy, pool, data_root, 3)
    llm = vllm_stub.instances[0]
    assert len(records) == 2 and all(r["actions"] == ["look", "inventory", "look"] for r in records)
    for r in records:
        assert r["turns"][1]["observation"] == "You are not carrying anything."
        assert all(t["admissible"] and t["thinking"] == "Decoy.\nAction: examine desk 1" for t in r["turns"])
        assert all("Observation: made up" not in t["completion"] for t in r["turns"])
        assert r["completion_tokens"] == 3 * len(respond([], None).split())
    # Every later prompt holds the answers only: no thinking block ever went back to the model.
    sent = [m for call in llm.calls for conv in call["messages"] for m in conv if m["role"] == "assistant"]
    assert sent and all("<think>" not in m["content"] and "Decoy" not in m["content"] for m in sent)
    assert all(c["chat_template_kwargs"] == {"enable_thinking": True} for c in llm.calls)
    assert max(len(c["messages"]) for c in llm.calls) == 2  # both episodes in one call per turn


# ---- the openai backend: reasoning from a vLLM server ----

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
