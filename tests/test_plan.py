"""The experiment's design (duomem.plan) on the paper config and the CPU default, without Snakemake;
and the package's imports, which must form no cycle."""

import ast

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO
from duomem.plan import DEV_SPLIT, TEST_SPLIT, Plan, episodes_of, pipeline_path, summary_path

SCHEMA = REPO / "schemas" / "config.schema.yaml"


def load(path):
    """The config as the workflow sees it: the schema's defaults filled in (as the Snakefile does)."""
    config = yaml.safe_load((REPO / path).read_text())
    validate(config, str(SCHEMA))
    return config


@pytest.fixture(scope="module")
def paper():
    return Plan(load("config.yaml"))


@pytest.fixture(scope="module")
def cpu():
    return Plan(load("config/cpu.yaml"))


def evaluation(path):
    """(split, model, adapter, memory) of a summary path."""
    parts = path.split("/")
    assert parts[:2] == ["results", "eval"] and parts[-1] == "summary.csv", path
    return tuple(parts[2:6])


# ---- the paper config (config.yaml): the counts tests/test_paper_dag.py plans as jobs ----

STUDENTS, LORA_MODELS, GRID = 11, 4, 3 * 4
TRAINED = LORA_MODELS * GRID + 2 * GRID  # adapters: the main grids and table 5's two other strategies
MEMORIES = ["none", "script-self-k10", "script-cd-k10", "trajectory", "memp-self-k10", "memp-cd-k10"]


def test_paper_memory_configurations(paper):
    assert paper.evaluated_models()[-1] == paper.teacher == "qwen2.5-72b-instruct"
    assert len(paper.evaluated_models()) == STUDENTS + 1
    for student in paper.students:
        assert paper.memory_labels(student) == MEMORIES
    # the teacher's own bank is the CD bank: no separate -cd configurations
    assert paper.memory_labels(paper.teacher) == ["none", "script-self-k10", "trajectory", "memp-self-k10"]
    assert paper.select_memory == "memp-cd-k10"


def test_paper_evaluations(paper):
    test = paper.eval_targets()
    assert len(test) == len(set(test)) == STUDENTS * 6 + 4 + 9 * 2  # + figure 3: k = 1..9, Script/MemP
    assert {evaluation(p)[0] for p in test} == {TEST_SPLIT}
    lora = set(paper.lora_eval_targets())
    # the selected adapter under every memory configuration; table 5's other two strategies
    assert len(lora) == LORA_MODELS * 6 + 2 * 2
    dev = {s for m in paper.lora["models"] for s in paper.selection_inputs(m, "full")["summaries"]}
    dev |= {s for s in paper.selection_inputs("qwen3-4b-instruct", "latest")["summaries"]}
    dev |= {s for s in paper.selection_inputs("qwen3-4b-instruct", "last5")["summaries"]}
    assert len(dev) == TRAINED  # one dev evaluation per adapter
    assert len(set(test) | lora | dev) == 188  # the README's count of the paper's evaluations


def test_paper_selection_and_adapters(paper):
    inputs = paper.selection_inputs("qwen3-8b", "full")
    assert len(inputs["adapters"]) == len(inputs["summaries"]) == GRID
    assert inputs["adapters"][0] == "results/lora/qwen3-8b/full/r8_lr1e-06"
    assert inputs["summaries"][0] == summary_path(DEV_SPLIT, "qwen3-8b", "full-r8-lr1e-06", "memp-cd-k10")
    assert paper.adapter_inputs("qwen3-8b", "base") == {}
    assert paper.adapter_inputs("qwen3-8b", "lora") == {"selected": "results/lora/qwen3-8b/selected.json"}
    assert paper.adapter_inputs("qwen3-8b", "lora-last5") == {
        "selected": "results/lora/qwen3-8b/last5/selected.json"}
    assert paper.adapter_inputs("qwen3-8b", "full-r16-lr5e-05") == {"adapter": "results/lora/qwen3-8b/full/r16_lr5e-05"}
    # the paper's SFT prompts have no memory: one SFT set per strategy, the collector's, for every student
    assert paper.sft_path("qwen3-8b", "last5") == paper.sft_path("gemma3-12b-it", "last5") == (
        "results/sft/qwen2.5-72b-instruct/last5.jsonl")


def test_paper_memory_inputs(paper):
    """CD reads the teacher's bank, `self` the model's own (embedded as the paper does, with OpenAI's
    text-embedding-3-small); trajectory and MemP read the references."""
    assert paper.memory_inputs("qwen3-8b", TEST_SPLIT, "none") == {}
    assert paper.memory_inputs("qwen3-8b", TEST_SPLIT, "trajectory") == {"reference": paper.references}
    assert paper.memory_inputs("qwen3-8b", DEV_SPLIT, "memp-cd-k10") == {
        "reference": paper.references,
        "memories": "results/memory/qwen2.5-72b-instruct/memories.json",
        "bank": "results/memory/qwen2.5-72b-instruct/openai-3-small/embeddings.npy",
        "queries": "results/embeddings/openai-3-small/valid_seen.npy"}
    assert paper.memory_inputs("qwen3-8b", TEST_SPLIT, "script-self-k10")["memories"] == (
        "results/memory/qwen3-8b/memories.json")
    assert paper.memory_banks() == [paper.teacher] + paper.students


def test_paper_tables_read_only_planned_evaluations(paper):
    """Every summary a table or figure reads is an evaluation `rule all` asks for (table 8: the
    dev grid that selection evaluates), so a table never schedules an evaluation of its own."""
    planned = set(paper.eval_targets() + paper.lora_eval_targets())
    dev = {s for m in paper.lora["models"] for s in paper.selection_inputs(m, "full")["summaries"]}
    for table in ("table1", "table2", "table4", "table5", "table7", "table9", "table10", "figure3",
                  "paper_comparison"):
        summaries = paper.table_summaries(table)
        assert summaries and set(summaries) <= planned, table
    assert set(paper.table_summaries("table8")) == dev
    assert episodes_of(["results/eval/a/b/c/d/summary.csv", None]) == ["results/eval/a/b/c/d/episodes.jsonl"]


def test_paper_table_rows(paper):
    columns = paper.table1_columns()
    assert list(columns) == ["no_memory", "memp", "memp_cd", "lora", "duomem"]
    teacher = paper.evaluated_models().index(paper.teacher)
    assert columns["memp_cd"][teacher] is None and columns["memp"][teacher] is not None
    assert sum(p is not None for p in columns["duomem"]) == LORA_MODELS
    assert evaluation(columns["duomem"][0]) == (TEST_SPLIT, "gemma4-e2b-it", "lora", "memp-cd-k10")
    assert len(paper.table4_rows()) == LORA_MODELS * 6
    assert [r[:3] for r in paper.table5_rows()][:2] == [("qwen3-4b-instruct", "full", "none"),
                                                        ("qwen3-4b-instruct", "full", "memp-cd-k10")]
    assert len(paper.table7_rows()) == STUDENTS * 6 + 4
    assert len(paper.table8_rows()) == LORA_MODELS * GRID
    assert len(paper.table9_pairs()) == STUDENTS * 2  # MemP and Script, own vs teacher memories
    assert paper.thinking_pairs() == [("qwen3-8b", "qwen3-8b-thinking"), ("qwen3-14b", "qwen3-14b-thinking"),
                                      ("qwen3-32b", "qwen3-32b-thinking")]
    assert len(paper.table10_rows()) == 3 * 6
    assert {(m, k) for m, _, k, _ in paper.figure3_rows()} == {("qwen3-14b", k) for k in range(1, 11)}
    assert len(paper.loss_curve_runs()) == TRAINED
    assert paper.paper_comparison_rows()


def test_paper_targets(paper):
    targets = paper.all_targets()
    tables = [t for t in targets if t.startswith("results/table")]
    assert sorted(tables) == sorted(f"results/table{i}.csv" for i in range(1, 11))
    assert {f"results/figures/{f}.png" for f in ("figure3", "success_by_type", "efficiency", "lora_grid",
                                                "loss_curves")} <= set(targets)
    viewers = [t for t in targets if t.startswith("results/viewer/")]
    assert len(viewers) == len(set(paper.eval_targets() + paper.lora_eval_targets()))
    assert "results/viewer/valid_unseen/qwen3-8b/base/none.html" in viewers


# ---- the CPU default (config/cpu.yaml): small enough to spell out ----


def test_cpu_default(cpu):
    student = "smollm2-135m-instruct"
    assert cpu.evaluated_models() == [student, "expert"]
    assert cpu.memory_labels(student) == ["none", "memp-self-k3", "memp-cd-k3"]
    assert cpu.memory_labels("expert") == ["none"]  # the oracle takes no prompt
    assert cpu.eval_targets() == [summary_path(TEST_SPLIT, student, "base", m)
                                  for m in ("none", "memp-self-k3", "memp-cd-k3")] + [
        summary_path(TEST_SPLIT, "expert")]
    # lora.eval_memories: the CPU default plays the adapter under MemP (+LoRA) and MemP+CD (DuoMem)
    # only, no LoRA alone; table 4's rows follow, table 1's +LoRA and DuoMem columns stay
    assert cpu.lora_eval_targets() == [summary_path(TEST_SPLIT, student, "lora", m)
                                       for m in ("memp-self-k3", "memp-cd-k3")]
    assert [r[1] for r in cpu.table4_rows()] == ["memp-self-k3", "memp-cd-k3"]
    assert [cpu.table1_columns()[c][0] for c in ("lora", "duomem")] == cpu.lora_eval_targets()
    every = Plan({**cpu.config, "lora": {**cpu.lora, "eval_memories": None}})  # null: every memory label
    assert every.lora_eval_targets() == [summary_path(TEST_SPLIT, student, "lora", m)
                                         for m in ("none", "memp-self-k3", "memp-cd-k3")]
    assert [r[1] for r in every.table4_rows()] == ["none", "memp-self-k3", "memp-cd-k3"]
    assert cpu.grid_labels("full") == ["full-r8-lr1e-03"]  # one adapter: the 60-minute budget has no room for two
    # the learning curve: the base model, the adapter after 64 and 128 samples and the whole adapter
    # on the dev games under the selection's MemP+CD; its last point is the selection's own evaluation
    rows = cpu.learning_curve_rows()
    assert [(r[2], evaluation(r[3])[2:]) for r in rows] == [
        (0, ("base", "memp-cd-k3")), (64, ("full-r8-lr1e-03-n64", "memp-cd-k3")),
        (128, ("full-r8-lr1e-03-n128", "memp-cd-k3")), (None, ("full-r8-lr1e-03", "memp-cd-k3"))]
    assert rows[-1][3] in cpu.selection_inputs(student, "full")["summaries"]
    assert {evaluation(r[3])[0] for r in rows} == {DEV_SPLIT}
    assert cpu.memory_banks() == ["expert", student]
    # the SFT prompts carry the three layouts the adapter is evaluated with (lora.sft_memory)
    assert cpu.sft_path(student, "full") == "results/sft/expert/full.with-memory.smollm2-135m-instruct.jsonl"
    assert cpu.sft_memory_inputs(student) == {
        "trajectories": "results/trajectories/expert/train.jsonl", "reference": cpu.references,
        "memories_self": f"results/memory/{student}/memories.json",
        "bank_self": f"results/memory/{student}/minilm/embeddings.npy",
        "memories_cd": "results/memory/expert/memories.json", "bank_cd": "results/memory/expert/minilm/embeddings.npy"}
    assert cpu.model_input(student) == ["results/models/smollm2-135m-instruct"]
    assert cpu.model_input("expert") == []
    assert pipeline_path("HuggingFaceTB/SmolLM2-135M-Instruct") == []
    targets = cpu.all_targets()
    assert [t for t in targets if not t.startswith(("results/eval/", "results/viewer/"))] == [
        "results/data/valid_unseen.jsonl", "results/trajectories/expert/train.jsonl",
        "results/table1.csv", "results/table3.csv", "results/table6.csv", "results/table9.csv",
        "results/table2.csv", "results/table4.csv", "results/table8.csv", "results/table7.csv",
        "results/paper_comparison.csv", "results/figures/success_by_type.png", "results/figures/efficiency.png",
        "results/figures/lora_grid.png", "results/figures/learning_curve.png", "results/figures/loss_curves.png"]
    # no thinking pair, no k ablation, no strategy models: no table 10, figure 3 or table 5
    assert cpu.table10_rows() == cpu.figure3_rows() == cpu.table5_rows() == []
    assert cpu.table9_pairs() == [(student, "memp", summary_path(TEST_SPLIT, student, "base", "memp-self-k3"),
                                   summary_path(TEST_SPLIT, student, "base", "memp-cd-k3"))]
    assert cpu.paper_comparison_rows() == []  # SmolLM2 is none of the paper's models


def test_served_teacher_with_the_expert_as_collector():
    """config/cpu-served.yaml: the served teacher extracts and is evaluated; the expert plays the
    train games. Without `collector` the teacher plays them (the paper)."""
    served = Plan(load("config/cpu-served.yaml"))
    assert (served.teacher, served.collector) == ("smollm2-served", "expert")
    targets = served.all_targets()
    assert "results/trajectories/expert/train.jsonl" in targets
    assert not any(t.startswith("results/trajectories/smollm2-served/") for t in targets)
    assert served.memory_banks() == ["smollm2-served"]  # the served model writes the CD bank
    assert summary_path(TEST_SPLIT, "smollm2-served") in targets
    paper = Plan(load("config.yaml"))
    assert paper.collector == paper.teacher == "qwen2.5-72b-instruct"


def test_cpu_learning_curve_config():
    curve = Plan(load("config/cpu-curve.yaml"))
    rows = curve.learning_curve_rows()
    points = [("full-r8-lr1e-03", n) for n in (0, 30, 60, 120, None)]
    assert [(r[1], r[2]) for r in rows] == points + points  # under the selection's memory, then none
    assert [evaluation(r[3])[3] for r in rows] == [r[5] for r in rows] == ["memp-cd-k3"] * 5 + ["none"] * 5
    assert {evaluation(r[3])[0] for r in rows} == {DEV_SPLIT} and evaluation(rows[0][3])[2] == "base"
    # lora.curve_memories narrows it: No Memory only, and the selection still evaluates its adapter
    lora = {**curve.config["lora"], "curve_memories": ["none"]}
    narrow = Plan({**curve.config, "lora": lora})
    assert narrow.learning_curve_rows() == rows[5:]
    assert summary_path(DEV_SPLIT, "smollm2-135m-instruct", "full-r8-lr1e-03", "memp-cd-k3") in [
        summary_path(*e) for e in narrow.evaluations()]


# ---- shared engines (evaluation.share_engine) ----


def test_paper_engines(paper):
    # 188 evaluations, 16 engines: every student and the teacher on the test split, the 4 LoRA
    # models on dev (their grids' adapters are LoRAs loaded into the one engine)
    assert len(paper.evaluations()) == 188
    assert sum(paper.engine_startups().values()) == 16 and len(paper.engines()) == 16
    assert paper.engine_startups()["qwen3-4b-instruct"] == 2  # 52 evaluations: dev and test
    assert all(paper.shares_engine(m, a) for _, m, a, _ in paper.evaluations())
    assert paper.engine_inputs("qwen3-8b", DEV_SPLIT, "full-r8-lr1e-05") == {
        "engine": "results/engines/valid_seen/qwen3-8b.url"}
    unshared = Plan({**paper.config, "evaluation": {**paper.config["evaluation"], "share_engine": False}})
    assert sum(unshared.engine_startups().values()) == 188 and unshared.engines() == []
    assert unshared.engine_inputs("qwen3-8b", TEST_SPLIT, "base") == {}


def test_cpu_engines_stay_in_the_jobs():
    # A vllm model without GPUs keeps the offline engine in each job, even with share_engine on
    # (slower through a server on the CPU). With GPUs and merge_lora off, adapters share it too.
    config = load("config/cpu.yaml")
    config["evaluation"]["share_engine"] = True
    cpu = Plan(config)
    model = "smollm2-135m-instruct"
    assert not cpu.shares_engine(model, "base") and not cpu.shares_engine("expert", "base")
    # 10 evaluations, the expert's needs none: 3 base + 2 adapter on test, 4 learning-curve points on dev
    assert cpu.engines() == [] and cpu.engine_startups() == {model: 9}
    config["models"][model]["gpus"] = 1
    # test: base, adapter x 2 memories; dev: base, the adapter and its 2 curve points (each merged)
    assert Plan(config).engine_startups() == {model: 1 + 2 + 1 + 3}
    config["vllm"]["merge_lora"] = False
    assert Plan(config).serves_adapters(model) and Plan(config).engine_startups() == {model: 2}  # test, dev


def test_served_engines():
    # config/cpu-served.yaml: the served teacher's evaluations share its `serve` command's server
    served = Plan(load("config/cpu-served.yaml"))
    assert served.engines() == ["results/engines/valid_unseen/smollm2-served.url"]
    assert not served.shares_engine("smollm2-135m-instruct", "base")


# ---- the package's imports ----


def import_graph():
    """{module: modules of duomem it imports}, lazy (function-level) imports included."""
    package = REPO / "duomem"
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            deps |= {c for c in candidates if c in modules and c != name}
        graph[name] = deps
    return graph


def test_no_import_cycle():
    graph = import_graph()
    assert {"duomem.collect", "duomem.evaluate", "duomem.references", "duomem.plan"} <= set(graph)
    done, path = set(), []

    def visit(module):
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
