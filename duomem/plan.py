"""The experiment's design: which evaluations a config asks for, and what each table and figure reads.

A validated config (defaults filled) goes in; paths and table rows come out. Nothing here knows
Snakemake, the environment or the cluster: rules/common.smk builds one `Plan` and the rules only
connect to it, so auditing the DAG means reading this module and the rule graph.

Result paths (the evaluation's wildcards; memory labels: duomem.memory_config, adapter labels:
duomem.selection):
  results/eval/{split}/{model}/{adapter}/{memory}/summary.csv   (+ episodes.jsonl beside it)
"""

from pathlib import Path

from .lora import lr_label
from .memory_config import make_label, parse_label
from .paper import matching_rows, paper_entries, paper_numbers_path
from .references import reference_path
from .selection import curve_label, grid_label, parse_grid_label, split_curve_label

TEST_SPLIT = "valid_unseen"  # the paper's test split
DEV_SPLIT = "valid_seen"  # the paper's dev split: adapter selection only
EVAL = "results/eval/{split}/{model}/{adapter}/{memory}"
ENGINE = "results/engines/{split}/{model}.url"  # a shared engine's address (a Snakemake service file)


def summary_path(split, model, adapter="base", memory="none"):
    return f"{EVAL}/summary.csv".format(split=split, model=model, adapter=adapter, memory=memory)


def episodes_of(summaries):
    """The episodes.jsonl beside each summary: paired tests read the per-task outcomes."""
    return [str(Path(p).with_name("episodes.jsonl")) for p in summaries if p]


def pipeline_path(path):
    """[path] when the pipeline itself builds it (results/...), else []: hub ids are not files."""
    return [path] if path.startswith("results/") else []


class Plan:
    """The design of one config. Lists keep the config's order, so rule parameters stay stable."""

    def __init__(self, config):
        self.config = config
        self.models = config["models"]
        self.teacher = config["teacher"]
        # who plays the train games: the teacher, unless the config names another model (cpu-served)
        self.collector = config["teacher_collection"].get("collector") or self.teacher
        self.students = config["students"]
        self.k = config["memory"]["k"]
        self.embedder = config["memory"]["embedder"]
        self.lora = config["lora"]
        self.main_strategy = self.lora["strategy"]
        # adapters are chosen on dev under MemP+CD (paper §4)
        self.select_memory = make_label("memp", True, self.k)
        self.references = str(reference_path())
        self.paper_numbers = str(paper_numbers_path())

    # ---- context-space distillation: models, memory configurations, memory banks ----

    def evaluated_models(self):
        models = list(self.students)
        if self.config["evaluation"]["teacher"] and self.teacher not in models:
            models.append(self.teacher)
        return models

    def memory_labels(self, model):
        """The memory configurations `model` is evaluated with on the test split."""
        if self.models[model]["backend"] == "expert":
            return ["none"]  # the oracle reads the environment's plan, not its prompt
        labels = []
        for kind in self.config["evaluation"]["memory"]:
            if kind in ("none", "trajectory"):
                labels.append(kind)
                continue
            for cd in self.config["evaluation"]["cd"]:
                if not (model == self.teacher and cd):  # the teacher's own bank is the CD bank
                    labels.append(make_label(kind, cd, self.k))
        return labels

    def lora_memory_labels(self, model):
        """The memory configurations `model`'s selected adapter plays the test games under: every one
        of memory_labels, or those `lora.eval_memories` names (e.g. without No Memory: no LoRA alone)."""
        wanted = self.lora.get("eval_memories")
        return [m for m in self.memory_labels(model) if wanted is None or m in wanted]

    def k_ablation_labels(self):
        return [
            make_label(kind, True, k) for k in self.config["memory"]["k_ablation"] for kind in ("script", "memp")
        ]

    def extractor_of(self, model, bank):
        return model if bank == "self" else self.teacher

    def memory_inputs(self, model, split, memory):
        """Reference trajectories and/or the memory bank, its embeddings and the task embeddings."""
        kind, bank, _ = parse_label(memory)
        inputs = {}
        if kind in ("trajectory", "memp"):
            inputs["reference"] = self.references
        if kind in ("script", "memp"):
            extractor = self.extractor_of(model, bank)
            inputs["memories"] = f"results/memory/{extractor}/memories.json"
            inputs["bank"] = f"results/memory/{extractor}/{self.embedder}/embeddings.npy"
            inputs["queries"] = f"results/embeddings/{self.embedder}/{split}.npy"
        return inputs

    def memory_banks(self):
        """Every memory bank the evaluations use: each student's own, and the teacher's."""
        banks = [self.teacher]
        if False in self.config["evaluation"]["cd"]:
            banks += [m for m in self.students if m != self.teacher]
        return banks

    def model_input(self, model):
        """The model folder when the pipeline builds it, else nothing (a hub id, an endpoint)."""
        return pipeline_path(self.models[model].get("path", ""))

    def model_gpus(self, model):
        m = self.models[model]
        return m.get("gpus", 1 if m["backend"] in ("hf", "vllm") else 0)

    # ---- engines: which evaluations start one, which share one server per (split, model) ----

    def engine_kind(self, model):
        """How `model`'s evaluations get an engine: "vllm" (built from its vllm settings), "serve"
        (its own serve command), None (the expert, hf, an external endpoint: nothing to start)."""
        m = self.models[model]
        if m.get("serve"):
            return "serve"
        return "vllm" if m["backend"] == "vllm" else None

    def serves_adapters(self, model):
        """True where the shared engine also serves the model's adapters (LoRAs loaded at run time).
        Not on a CPU: vLLM's CPU build gives base rows another request's adapter when one batch
        mixes them (FIELD-NOTES); not with merge_lora: a merged adapter is other weights."""
        return self.engine_kind(model) == "vllm" and self.model_gpus(model) > 0 and not self.config["vllm"]["merge_lora"]

    def shares_engine(self, model, adapter):
        """True when the evaluation talks to its (split, model) engine service (evaluation.share_engine).
        A vllm model without GPUs keeps vLLM's offline engine inside each job: on the CPU a shared
        server's evaluations ran several times slower (README, "Shared engines")."""
        kind = self.engine_kind(model)
        if not self.config["evaluation"]["share_engine"] or not kind:
            return False
        if kind == "vllm" and self.model_gpus(model) == 0:
            return False
        return adapter == "base" or self.serves_adapters(model)

    def engine_inputs(self, model, split, adapter):
        return {"engine": ENGINE.format(split=split, model=model)} if self.shares_engine(model, adapter) else {}

    def evaluations(self):
        """(split, model, adapter, memory) of every evaluation the whole DAG runs, dev grids included."""
        paths = self.eval_targets() + self.lora_eval_targets()
        paths += [row[3] for row in self.learning_curve_rows()]
        for m in self.lora["models"]:
            paths += self.selection_inputs(m, self.main_strategy)["summaries"]
        for m in self.lora["strategy_models"]:
            for s in self.lora["strategies"]:
                paths += self.selection_inputs(m, s)["summaries"]
        return [tuple(Path(p).parts[2:6]) for p in dict.fromkeys(paths)]

    def engines(self):
        """The engine service files of the whole DAG: one per (split, model) with a sharing evaluation."""
        return list(dict.fromkeys(ENGINE.format(split=s, model=m) for s, m, a, _ in self.evaluations()
                                  if self.shares_engine(m, a)))

    def engine_startups(self):
        """Engine start-ups per model over the whole DAG: one per shared engine, one per other evaluation."""
        counts = {}
        for split, model, adapter, _ in self.evaluations():
            if self.engine_kind(model) and not self.shares_engine(model, adapter):
                counts[model] = counts.get(model, 0) + 1
        for path in self.engines():
            model = Path(path).stem
            counts[model] = counts.get(model, 0) + 1
        return counts

    # ---- parameter-space distillation: the LoRA grid, selection, adapter evaluations ----

    def sft_path(self, model, strategy):
        """The SFT set `model`'s adapters train on: the collector's plain one (the paper's prompts,
        `lora.sft_memory: [none]`), else one whose prompts carry memory, built for `model` (its own
        memory bank may be one of them; duomem.sft_memory)."""
        if self.lora["sft_memory"] == ["none"]:
            return f"results/sft/{self.collector}/{strategy}.jsonl"
        return f"results/sft/{self.collector}/{strategy}.with-memory.{model}.jsonl"

    def sft_memory_inputs(self, model):
        """The trajectories, and the reference trajectories and memory banks the labels of
        `lora.sft_memory` name (memories_<bank>, bank_<bank> for bank self / cd)."""
        inputs = {"trajectories": f"results/trajectories/{self.collector}/train.jsonl"}
        for label in self.lora["sft_memory"]:
            kind, bank, _ = parse_label(label)
            if kind in ("trajectory", "memp"):
                inputs["reference"] = self.references
            if bank is not None:
                extractor = self.extractor_of(model, bank)
                inputs[f"memories_{bank}"] = f"results/memory/{extractor}/memories.json"
                inputs[f"bank_{bank}"] = f"results/memory/{extractor}/{self.embedder}/embeddings.npy"
        return inputs

    def grid_labels(self, strategy):
        return [grid_label(strategy, r, lr_label(lr)) for r in self.lora["ranks"] for lr in self.lora["lrs"]]

    def lora_dir(self, model, label):
        strategy, rank, lr = parse_grid_label(split_curve_label(label)[0])
        return f"results/lora/{model}/{strategy}/r{rank}_lr{lr}"

    def selection_file(self, model, strategy):
        if strategy == self.main_strategy:
            return f"results/lora/{model}/selected.json"
        return f"results/lora/{model}/{strategy}/selected.json"

    def selections(self):
        """The main strategy's selection record of every LoRA model (tables 2, 3 and 8)."""
        return [self.selection_file(m, self.main_strategy) for m in self.lora["models"]]

    def adapter_label(self, strategy):
        return "lora" if strategy == self.main_strategy else f"lora-{strategy}"

    def adapter_inputs(self, model, adapter):
        """The adapter folder of a grid label, or the selection record that names the chosen one."""
        if adapter == "base":
            return {}
        if adapter == "lora":
            return {"selected": self.selection_file(model, self.main_strategy)}
        if adapter.startswith("lora-"):
            return {"selected": self.selection_file(model, adapter[len("lora-") :])}
        return {"adapter": self.lora_dir(model, adapter)}

    def selection_inputs(self, model, strategy):
        """Every adapter of the strategy's grid and its dev evaluation under MemP+CD."""
        labels = self.grid_labels(strategy)
        return {
            "adapters": [self.lora_dir(model, label) for label in labels],
            "summaries": [summary_path(DEV_SPLIT, model, label, self.select_memory) for label in labels],
        }

    def learning_curve_rows(self):
        """(model, grid label, trajectories, dev summary, adapter folder, memory) of each point of each
        main-strategy grid adapter's learning curve (lora.curve), under each of lora.curve_memories:
        the selection's memory configuration and/or No Memory (the +LoRA column's: a small student
        trained without memory in its prompt can do better without it). The first point is the base model
        (0 trajectories: what the adapter adds to), the last the adapter itself (trajectories None:
        all it was trained on, which its folder's train_summary.json says)."""
        if not self.lora["curve"]:
            return []
        names = self.lora.get("curve_memories", ["selection", "none"])
        memories = dict.fromkeys(self.select_memory if name == "selection" else name for name in names)
        rows = []
        for m in self.lora["models"]:
            for label in self.grid_labels(self.main_strategy):
                folder = self.lora_dir(m, label)
                for memory in memories:
                    points = [(0, "base")] + [(n, curve_label(label, n)) for n in self.lora["curve"]] + [(None, label)]
                    rows += [(m, label, n, summary_path(DEV_SPLIT, m, adapter, memory), folder, memory)
                             for n, adapter in points]
        return rows

    # ---- what `rule all` asks for ----

    def eval_targets(self):
        targets = []
        for split in self.config["evaluation"]["splits"]:
            for model in self.evaluated_models():
                for memory in self.memory_labels(model):
                    targets.append(summary_path(split, model, "base", memory))
        for model in self.config["memory"]["k_ablation_models"]:
            for memory in self.k_ablation_labels():
                targets.append(summary_path(TEST_SPLIT, model, "base", memory))
        return list(dict.fromkeys(targets))

    def lora_eval_targets(self):
        targets = []
        for model in self.lora["models"]:
            for memory in self.lora_memory_labels(model):
                targets.append(summary_path(TEST_SPLIT, model, "lora", memory))
        for model in self.lora["strategy_models"]:
            for strategy in self.lora["strategies"]:
                for memory in ("none", self.select_memory):
                    targets.append(summary_path(TEST_SPLIT, model, self.adapter_label(strategy), memory))
        return targets

    def all_targets(self):
        targets = [f"results/data/{s}.jsonl" for s in self.config["evaluation"]["splits"]]
        targets += self.eval_targets()
        targets += self.lora_eval_targets()
        targets += [f"results/trajectories/{self.collector}/train.jsonl"]
        targets += ["results/table1.csv", "results/table3.csv", "results/table6.csv", "results/table9.csv"]
        targets.append("results/table2.csv")
        if self.lora["models"]:
            targets += ["results/table4.csv", "results/table8.csv"]
        if self.lora["strategy_models"]:
            targets.append("results/table5.csv")
        return targets + self.report_targets()

    def report_targets(self):
        """Tables 7/10, figures, the paper comparison and the viewers this configuration can fill."""
        targets = ["results/table7.csv", "results/paper_comparison.csv"]
        targets += [f"results/figures/{f}.png" for f in ("success_by_type", "efficiency")]
        if self.thinking_pairs():
            targets.append("results/table10.csv")
        if self.config["memory"]["k_ablation"] and self.config["memory"]["k_ablation_models"]:
            targets.append("results/figures/figure3.png")
        if self.lora["models"]:
            targets.append("results/figures/lora_grid.png")
        if self.learning_curve_rows():
            targets.append("results/figures/learning_curve.png")
        if self.loss_curve_runs():
            targets.append("results/figures/loss_curves.png")
        return targets + self.viewer_targets()

    def viewer_targets(self):
        """One trajectory viewer page per evaluation in `rule all` (dev grid evaluations excepted)."""
        return [
            f"results/viewer/{Path(p).parent.relative_to('results/eval')}.html"
            for p in dict.fromkeys(self.eval_targets() + self.lora_eval_targets())
        ]

    # ---- the rows of each table and figure, as (labels..., summary paths) ----

    def table1_columns(self):
        """Summary paths per table-1 column, one per evaluated model; None where a model has no such
        evaluation. A column appears only when some model has it."""
        columns = {}
        wanted = {
            "no_memory": ("base", "none"),
            "memp": ("base", make_label("memp", False, self.k)),
            "memp_cd": ("base", make_label("memp", True, self.k)),
            "lora": ("lora", make_label("memp", False, self.k)),
            "duomem": ("lora", make_label("memp", True, self.k)),
        }
        for col, (adapter, label) in wanted.items():
            paths = [
                (
                    summary_path(TEST_SPLIT, m, adapter, label)
                    if label in self.memory_labels(m)
                    and (adapter == "base" or (m in self.lora["models"] and label in self.lora_memory_labels(m)))
                    else None
                )
                for m in self.evaluated_models()
            ]
            if any(paths):
                columns[col] = paths
        return columns

    def table4_rows(self):
        """(model, memory, base summary, +LoRA summary) for every LoRA model's memory configuration."""
        return [
            (
                m,
                memory,
                summary_path(TEST_SPLIT, m, "base", memory),
                summary_path(TEST_SPLIT, m, "lora", memory),
            )
            for m in self.lora["models"]
            for memory in self.lora_memory_labels(m)
        ]

    def table5_rows(self):
        """(model, strategy, memory, summary): each input strategy's selected adapter."""
        return [
            (m, s, memory, summary_path(TEST_SPLIT, m, self.adapter_label(s), memory))
            for m in self.lora["strategy_models"]
            for s in self.lora["strategies"]
            for memory in ("none", self.select_memory)
        ]

    def table7_rows(self):
        """(model, memory, summary) for every evaluated model and memory configuration, no adapter."""
        return [
            (m, memory, summary_path(TEST_SPLIT, m, "base", memory))
            for m in self.evaluated_models()
            for memory in self.memory_labels(m)
        ]

    def table8_rows(self):
        """(model, grid label, dev summary) of the main strategy's grid."""
        return [
            (m, label, summary_path(DEV_SPLIT, m, label, self.select_memory))
            for m in self.lora["models"]
            for label in self.grid_labels(self.main_strategy)
        ]

    def table9_pairs(self):
        """(student, kind, own-memories summary, teacher-memories summary) where both are evaluated."""
        pairs = []
        for model in self.students:
            for kind in ("memp", "script"):
                own, cd = make_label(kind, False, self.k), make_label(kind, True, self.k)
                if {own, cd} <= set(self.memory_labels(model)):
                    pairs.append(
                        (
                            model,
                            kind,
                            summary_path(TEST_SPLIT, model, "base", own),
                            summary_path(TEST_SPLIT, model, "base", cd),
                        )
                    )
        return pairs

    def thinking_pairs(self):
        """(non-thinking, thinking): two evaluated model entries of one `path`, thinking false and true."""
        models = self.evaluated_models()
        return [
            (a, b)
            for a in models
            for b in models
            if self.models[a].get("path")
            and self.models[a].get("path") == self.models[b].get("path")
            and self.models[a].get("thinking") is False
            and self.models[b].get("thinking") is True
        ]

    def table10_rows(self):
        """(non-thinking, thinking, memory, its summary, the thinking one's) per shared memory."""
        return [
            (
                a,
                b,
                memory,
                summary_path(TEST_SPLIT, a, "base", memory),
                summary_path(TEST_SPLIT, b, "base", memory),
            )
            for a, b in self.thinking_pairs()
            for memory in self.memory_labels(a)
            if memory in self.memory_labels(b)
        ]

    def figure3_rows(self):
        """(model, kind, k, summary): Script and MemP with CD at every k of the ablation and the main k."""
        ks = sorted(set(self.config["memory"]["k_ablation"]) | {self.k})
        return [
            (m, kind, k, summary_path(TEST_SPLIT, m, "base", make_label(kind, True, k)))
            for m in self.config["memory"]["k_ablation_models"]
            for kind in ("script", "memp")
            for k in ks
        ]

    def loss_curve_runs(self):
        """(model, grid label, adapter folder) of every adapter the configuration trains."""
        runs = [
            (m, label, self.lora_dir(m, label))
            for m in self.lora["models"]
            for label in self.grid_labels(self.main_strategy)
        ]
        runs += [
            (m, label, self.lora_dir(m, label))
            for m in self.lora["strategy_models"]
            for s in self.lora["strategies"]
            for label in self.grid_labels(s)
        ]
        return list(dict.fromkeys(runs))

    def paper_comparison_rows(self):
        """The paper's numbers whose setting this configuration evaluates anyway (duomem.paper)."""
        return matching_rows(
            paper_entries(self.paper_numbers),
            self.models,
            self.config["max_steps"],
            self.adapter_label,
            lambda m, a, label: summary_path(TEST_SPLIT, m, a, label),
            set(self.eval_targets() + self.lora_eval_targets()),
        )

    def table_summaries(self, table):
        """The summary.csv files a table rule reads, in its rows' order."""
        rows = {
            "table1": lambda: [p for paths in self.table1_columns().values() for p in paths if p],
            "table4": lambda: [p for row in self.table4_rows() for p in row[2:]],
            "table5": lambda: [row[3] for row in self.table5_rows()],
            "table7": lambda: [row[2] for row in self.table7_rows()],
            "learning_curve": lambda: list(dict.fromkeys(row[3] for row in self.learning_curve_rows())),
            "table8": lambda: [row[2] for row in self.table8_rows()],
            "table9": lambda: [p for pair in self.table9_pairs() for p in pair[2:]],
            "table10": lambda: [p for row in self.table10_rows() for p in row[3:]],
            "figure3": lambda: [row[3] for row in self.figure3_rows()],
            "paper_comparison": lambda: [p for row in self.paper_comparison_rows() for p in row[7]],
        }
        rows["table2"] = rows["table1"]  # table 2 prices table 1's configurations
        return rows[table]()
