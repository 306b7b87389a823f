"""Checks the schema cannot express; each failure names the key and what is allowed."""


class ConfigError(ValueError):
    pass


def _fail(key, problem, allowed):
    raise ConfigError(f"config key `{key}`: {problem}; allowed: {allowed}")


def check_config(config):
    models = config["models"]
    names = ", ".join(sorted(models))
    if config["teacher"] not in models:
        _fail("teacher", f"{config['teacher']!r} is not a key of `models`", names)
    for s in config["students"]:
        if s not in models:
            _fail("students", f"{s!r} is not a key of `models`", names)
    for name, m in models.items():
        key = f"models.{name}"
        if m["backend"] in ("hf", "vllm") and not m.get("path"):
            _fail(f"{key}.path", f"the {m['backend']} backend needs a model path", "a hub id or a local folder")
        if m["backend"] == "openai" and not m.get("base_url"):
            _fail(f"{key}.base_url", "the openai backend needs an endpoint URL", "an http(s):// URL such as http://localhost:8000/v1")
        if m["backend"] == "openai" and m.get("base_url") and not m["base_url"].startswith(("http://", "https://")):
            _fail(f"{key}.base_url", f"{m['base_url']!r} is not a URL", "an http(s):// URL")
        if "thinking" in m and "qwen3" not in (name + m.get("path", "")).lower():
            _fail(f"{key}.thinking", "only Qwen3 hybrid models have a thinking mode", "remove the key for this model")
        if m["backend"] == "expert" and name in config["students"]:
            _fail("students", f"{name!r} is the oracle expert, which cannot be a student", "hf, vllm or openai models")
    for m in config["memory"]["k_ablation_models"]:
        if m not in models:
            _fail("memory.k_ablation_models", f"{m!r} is not a key of `models`", names)
    lora = config.get("lora", {})
    for key in ("models", "strategy_models"):
        for m in lora.get(key, []):
            if m not in config["students"]:
                _fail(f"lora.{key}", f"{m!r} is not a student", ", ".join(config["students"]))
            if models[m]["backend"] not in ("hf", "vllm", "openai"):
                _fail(f"lora.{key}", f"{m!r} uses the {models[m]['backend']} backend, which takes no adapter",
                      "students with backend hf, vllm or openai")
    if lora.get("strategy_models") and lora.get("strategy") not in lora.get("strategies", []):
        _fail("lora.strategies", f"the main strategy {lora.get('strategy')!r} is missing", "a list holding it")
    return config
