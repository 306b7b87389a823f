"""Key/value-cache reuse for the hf backend: the model never re-reads a conversation it has seen.

An agent's prompt at turn t is its prompt at turn t-1 plus the completion plus one observation, so
each conversation keeps its cache between turns (a `Session`) and only the new tail is prefilled.
A new episode starts from the longest cached prefix of an earlier episode's first prompt (the system
prompt and the same-type reference trajectory are identical across episodes), so shared context is
computed once. Prefill runs per conversation (exact, no padding); decoding runs the whole batch at
once over left-padded copies of the caches, in preallocated buffers (no per-token concatenation).
"""

import time

import numpy as np
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def _grouped_decode_attention(query, key, value, mask, scaling=None):
    """Attention of a few new positions over a batch's cache, each cached key/value head read once by
    all the query heads of its group (two matmuls). On this CPU torch's masked SDPA runs ~12x slower
    for one bf16 decode step (16 rows x 1,500 positions: 17 ms vs 1.4 ms), and transformers < 5.2x
    first copies every key/value head per query group (repeat_kv). Softmax in float32."""
    b, hq, m, d = query.shape
    hk, n = key.shape[1], key.shape[2]
    g = hq // hk  # query head j reads key/value head j // g (transformers' repeat_kv order)
    scores = (query.reshape(b, hk, g * m, d) @ key.transpose(-1, -2)).float().view(b, hk, g, m, n)
    scores = scores * (scaling if scaling is not None else d ** -0.5)
    mask = mask[:, :, None]  # [b, 1, 1, m, n]
    scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    probs = torch.softmax(scores, dim=-1).to(value.dtype).view(b, hk, g * m, n)
    return (probs @ value).view(b, hq, m, d).transpose(1, 2).contiguous()


def kv_attention(dtype):
    """The name of an attention implementation that runs SDPA with keys, values and queries in
    `dtype` (registered with transformers once). Decoding a batch of long conversations on a CPU
    is bound by reading the key/value cache; a bfloat16 cache halves that traffic while the
    weights stay float32. Caches that hold float32 (plain `generate`) are cast, so every path
    computes the same attention."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    name = f"duomem_sdpa_{str(dtype).removeprefix('torch.')}"

    def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
        out_dtype = query.dtype
        query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
        if attention_mask is None:  # transformers' path (grouped-query attention without copies)
            out, weights = sdpa_attention_forward(module, query, key, value, None, scaling=scaling, **kwargs)
            return out.to(out_dtype), weights
        mask = attention_mask[:, :, :, : key.shape[-2]]
        if query.shape[2] <= 16:  # decoding: see _grouped_decode_attention
            return _grouped_decode_attention(query, key, value, mask, scaling).to(out_dtype), None
        if mask.is_floating_point():
            mask = mask.to(dtype)
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling,
                                                               enable_gqa=key.shape[1] != query.shape[1])
        return out.transpose(1, 2).contiguous().to(out_dtype), None

    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, sdpa_mask)
    return name


class _SlabLayer(DynamicLayer):
    """A cache layer over preallocated [batch, heads, capacity, dim] buffers, filled up to `n`."""

    def __init__(self, kbuf, vbuf, n):
        super().__init__()
        self.kbuf, self.vbuf, self.n = kbuf, vbuf, n
        self.dtype, self.device = kbuf.dtype, kbuf.device
        self.is_initialized = True
        self._view()

    def _view(self):
        self.keys, self.values = self.kbuf[:, :, :self.n], self.vbuf[:, :, :self.n]

    def update(self, key_states, value_states, *args, **kwargs):
        m = key_states.shape[-2]
        if self.n + m > self.kbuf.shape[2]:
            grow = max(self.n + m, 2 * self.kbuf.shape[2]) - self.kbuf.shape[2]
            pad = (0, 0, 0, grow)
            self.kbuf = torch.nn.functional.pad(self.kbuf, pad)
            self.vbuf = torch.nn.functional.pad(self.vbuf, pad)
        self.kbuf[:, :, self.n:self.n + m] = key_states
        self.vbuf[:, :, self.n:self.n + m] = value_states
        self.n += m
        self._view()
        return self.keys, self.values


def _cache(layers):
    cache = DynamicCache()
    cache.layers = layers
    return cache


class Session:
    """One conversation's cache: `tokens` are exactly the tokens whose keys/values are stored."""

    def __init__(self, layers, tokens):
        self.layers, self.tokens = layers, np.asarray(tokens, dtype=np.int64)
        self.prompt_len, self.last_used = 0, 0

    def common_prefix(self, ids):
        m = min(len(ids), len(self.tokens))
        differ = np.flatnonzero(ids[:m] != self.tokens[:m])
        return int(differ[0]) if differ.size else m

    def truncate(self, n):
        for layer in self.layers:
            layer.n = min(layer.n, n)
            layer._view()
        self.tokens = self.tokens[:n]

    def copy(self, n):
        layers = [_SlabLayer(l.kbuf[:, :, :n].clone(), l.vbuf[:, :, :n].clone(), n) for l in self.layers]
        return Session(layers, self.tokens[:n])


class KVEngine:
    """Batched greedy (or seeded sampled) generation with per-conversation cache reuse."""

    def __init__(self, model, eos_ids, max_new_tokens, temperature=0.0, seed=0, prefix_store=8, kv_dtype=None):
        self.model, self.eos_ids = model, set(eos_ids)
        self.kv_dtype = kv_dtype or next(model.parameters()).dtype
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.generator = torch.Generator().manual_seed(seed)
        self.sessions, self.prefixes, self.prefix_store = [], [], prefix_store
        self.turn = 0
        self.stats = {"prefill_tokens": 0, "decode_tokens": 0, "reused_tokens": 0, "model_seconds": 0.0,
                      "prefill_seconds": 0.0, "decode_seconds": 0.0}

    @property
    def device(self):
        return next(self.model.parameters()).device

    def end_turn(self):
        """Forget conversations that were not continued in this turn or the one before."""
        self.turn += 1
        self.sessions = [s for s in self.sessions if s.last_used >= self.turn - 2]

    def _session_for(self, ids, taken):
        """(session, cached tokens, continued): the conversation this prompt continues, or else a
        copy of the longest shared prefix of an earlier first prompt, or else nothing."""
        for s in self.sessions:
            if id(s) not in taken and s.prompt_len and s.common_prefix(ids) >= s.prompt_len:
                n = min(s.common_prefix(ids), len(ids) - 1)  # one token must run for the logits
                s.truncate(n)
                return s, n, True
        best, best_n = None, 0
        for p in self.prefixes:
            n = p.common_prefix(ids)
            if n > best_n:
                best, best_n = p, n
        best_n = min(best_n, len(ids) - 1)
        if best is None or best_n <= 0:
            return None, 0, False
        return best.copy(best_n), best_n, False

    def _prefill(self, ids, taken):
        """Run the new tail of one prompt through the model; return its session and next-token logits."""
        session, n, continued = self._session_for(ids, taken)
        if session is None:
            session = self._empty_session(len(ids) + self.max_new_tokens)
        if not continued:
            self.sessions.append(session)
        taken.add(id(session))
        tail = torch.as_tensor(ids[n:], device=self.device)[None]
        positions = torch.arange(n, len(ids), device=self.device)[None]
        out = self.model(input_ids=tail, position_ids=positions, past_key_values=_cache(session.layers),
                         use_cache=True, logits_to_keep=1)
        session.tokens, session.prompt_len, session.last_used = ids, len(ids), self.turn
        self.stats["prefill_tokens"] += len(ids) - n
        self.stats["reused_tokens"] += n
        if not continued:
            self._remember_prefix(session, len(ids))
        return session, out.logits[0, -1]

    def _empty_session(self, capacity):
        cfg = self.model.config.get_text_config()
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dtype = self.kv_dtype
        shape = (1, heads, capacity, dim)
        layers = [_SlabLayer(torch.zeros(shape, dtype=dtype, device=self.device),
                             torch.zeros(shape, dtype=dtype, device=self.device), 0)
                  for _ in range(cfg.num_hidden_layers)]
        return Session(layers, [])

    def _remember_prefix(self, session, n):
        self.prefixes.insert(0, session.copy(n))
        del self.prefixes[self.prefix_store:]

    def _pick(self, logits, temperature=None, generator=None):
        temperature = self.temperature if temperature is None else temperature
        if temperature > 0:
            probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)  # the generator is a CPU one
            return torch.multinomial(probs, 1, generator=generator or self.generator).squeeze(-1).to(logits.device)
        return logits.argmax(-1)

    def _pickers(self, sampling, n):
        """One token picker per row: the engine's own settings, or the row's own temperature with a
        generator of its own seed (a row's draws then do not depend on the rows beside it)."""
        pickers = []
        for s in sampling or [None] * n:
            if s is None:
                pickers.append(self._pick)
            else:
                g = torch.Generator().manual_seed(int(s["seed"]))
                pickers.append(lambda logits, t=float(s["temperature"]), g=g: self._pick(logits, t, g))
        return pickers

    @staticmethod
    def _keep_decoded(session, layers, i, width, generated):
        """Append to `session` what batch row `i` really fed while decoding: its completion minus the
        last token (never run)."""
        fed = len(generated) - 1
        for li, layer in enumerate(session.layers):
            layer.update(layers[li].kbuf[i:i + 1, :, width:width + fed], layers[li].vbuf[i:i + 1, :, width:width + fed])
        session.tokens = np.concatenate([session.tokens, np.asarray(generated[:fed], dtype=np.int64)])

    @torch.inference_mode()
    def generate(self, prompts, stop, sampling=None):
        """Token ids of one completion per prompt (lists of ints). `stop(generated_ids)` ends a row
        early. `sampling`: per prompt None (the engine's settings) or {"temperature", "seed"}."""
        t0 = time.perf_counter()
        taken = set()
        rows = [self._prefill(np.asarray(ids, dtype=np.int64), taken) for ids in prompts]
        t1 = time.perf_counter()
        self.stats["prefill_seconds"] += t1 - t0
        pickers = self._pickers(sampling, len(rows))
        per_row = any(s is not None for s in sampling or ())
        generated = [[int(pick(logits))] for pick, (_, logits) in zip(pickers, rows)]
        done = [g[0] in self.eos_ids or stop(g) for g in generated]
        lengths = [len(s.tokens) for s, _ in rows]
        width, B = max(lengths), len(rows)
        steps, decoded = 0, 0
        if not all(done) and self.max_new_tokens > 1:
            # Left-pad every cache into one batch buffer with room for the whole completion.
            cap = width + self.max_new_tokens
            layers = []
            for li in range(len(rows[0][0].layers)):
                ref = rows[0][0].layers[li].kbuf
                kb = torch.zeros((B, ref.shape[1], cap, ref.shape[3]), dtype=ref.dtype, device=ref.device)
                vb = torch.zeros_like(kb)
                for b, (s, _) in enumerate(rows):
                    kb[b, :, width - lengths[b]:width] = s.layers[li].keys[0]
                    vb[b, :, width - lengths[b]:width] = s.layers[li].values[0]
                layers.append(_SlabLayer(kb, vb, width))
            cache = _cache(layers)
            mask = torch.zeros((B, cap), dtype=torch.long, device=self.device)
            for b, n in enumerate(lengths):
                mask[b, width - n:width] = 1
            pos = torch.as_tensor(lengths, device=self.device)
            live = list(range(B))  # batch position -> row
            while not all(done) and steps < self.max_new_tokens - 1:
                if sum(done[b] for b in live) * 4 >= len(live):
                    # A quarter of the batch has finished its turn: drop those rows, so the model stops
                    # computing them (rows end their turns at very different lengths).
                    keep = [i for i, b in enumerate(live) if not done[b]]
                    for i, b in enumerate(live):
                        if done[b]:
                            self._keep_decoded(rows[b][0], layers, i, width, generated[b])
                    index = torch.as_tensor(keep, device=self.device)
                    for layer in layers:
                        layer.kbuf, layer.vbuf = layer.kbuf.index_select(0, index), layer.vbuf.index_select(0, index)
                        layer._view()
                    mask, pos, live = mask.index_select(0, index), pos.index_select(0, index), [live[i] for i in keep]
                last = torch.as_tensor([generated[b][-1] for b in live], device=self.device)[:, None]
                mask[:, width + steps] = 1
                out = self.model(input_ids=last, position_ids=(pos + steps)[:, None], past_key_values=cache,
                                 attention_mask=mask[:, :width + steps + 1], use_cache=True, logits_to_keep=1)
                logits = out.logits[:, -1]
                nxt = [pickers[b](logits[i]) for i, b in enumerate(live)] if per_row else self._pick(logits)
                steps += 1
                decoded += len(live)
                for i, b in enumerate(live):
                    if not done[b]:
                        generated[b].append(int(nxt[i]))
                        done[b] = generated[b][-1] in self.eos_ids or stop(generated[b])
            for i, b in enumerate(live):
                self._keep_decoded(rows[b][0], layers, i, width, generated[b])
        self.stats["decode_tokens"] += decoded
        self.stats["decode_seconds"] += time.perf_counter() - t1
        self.stats["model_seconds"] += time.perf_counter() - t0
        return generated
