"""ALFWorld task manifests: which games a split holds, their task type and task text."""

import hashlib
import json
import os
import re
from pathlib import Path

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
SPLITS = ("train", "valid_seen", "valid_unseen")
FULL_COUNTS = {"train": 3553, "valid_seen": 140, "valid_unseen": 134}
DATA_VERSION = "json_2.1.1"

HOW_TO_GET = (
    "Get the ALFWorld game files with `pip install alfworld==0.4.2 && alfworld-download` "
    "(it fills $ALFWORLD_DATA, default ~/.cache/alfworld) or extract an archive of json_2.1.1 there, "
    "then point ALFWORLD_DATA (or the config key `alfworld_data`) at the folder that contains json_2.1.1/."
)

_TASK_RE = re.compile(r'"task":\s*\[\s*\{\s*"rhs":\s*"Your task is to: (.*?)"')


class DataError(RuntimeError):
    """The ALFWorld data is missing or not what the protocol expects."""


def data_root(configured=""):
    """The folder holding json_2.1.1/: the config value if set, else $ALFWORLD_DATA."""
    root = configured or os.environ.get("ALFWORLD_DATA", "")
    if not root:
        raise DataError("ALFWORLD_DATA is not set and the config key `alfworld_data` is empty. " + HOW_TO_GET)
    root = Path(root).expanduser()
    if not (root / DATA_VERSION).is_dir():
        raise DataError(f"No {DATA_VERSION}/ folder under {root}. " + HOW_TO_GET)
    return root


def task_type_of(folder_name):
    prefix = folder_name.split("-", 1)[0]
    if prefix not in TASK_TYPES:
        raise DataError(f"Unknown ALFWorld task type {prefix!r} in folder {folder_name!r}")
    return prefix


def task_text_of(game_file):
    """The task sentence ("put a clean apple in fridge") read from the game's grammar, without a reset."""
    try:
        game = json.loads(Path(game_file).read_text())
        match = _TASK_RE.search(game["grammar"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"Corrupt or unreadable ALFWorld game file {game_file}: {e}") from None
    if not match:
        raise DataError(f"Corrupt ALFWorld game file {game_file}: its grammar has no task sentence")
    return match.group(1).rstrip(".")


def build_manifest(root, split, per_task_type=0, seed=0, expect_full=False):
    """All games of a split as sorted records; optionally a deterministic subset per task type.

    The subset takes the `per_task_type` games of each type that rank first under a seeded hash,
    so it spreads over objects and scenes (sorted order would cluster them) and never changes
    unless the seed does.
    """
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    split_dir = Path(root) / DATA_VERSION / split
    games = sorted(split_dir.glob("*/trial_*/game.tw-pddl"))
    if not games:
        raise DataError(f"The split {split!r} is empty: no */trial_*/game.tw-pddl under {split_dir}. " + HOW_TO_GET)
    if expect_full and len(games) != FULL_COUNTS[split]:
        raise DataError(
            f"The split {split!r} under {split_dir} has {len(games)} games; the full split has "
            f"{FULL_COUNTS[split]}. The data is partial: download it again. " + HOW_TO_GET
        )
    records = []
    for game in games:
        rel = game.relative_to(root).as_posix()
        folder, trial = game.parent.parent.name, game.parent.name
        records.append(
            {
                "task_id": f"{split}/{folder}/{trial}",
                "game": rel,
                "task_type": task_type_of(folder),
                "task": task_text_of(game),
                "trial": trial,
            }
        )
    if per_task_type:
        records = subset(records, per_task_type, seed)
    return records


def subset(records, per_task_type, seed=0):
    def rank(r):
        return hashlib.sha256(f"{seed}:{r['task_id']}".encode()).hexdigest()

    keep = set()
    for t in TASK_TYPES:
        of_type = sorted((r for r in records if r["task_type"] == t), key=rank)
        keep.update(r["task_id"] for r in of_type[:per_task_type])
    return [r for r in records if r["task_id"] in keep]


def manifest_checksum(records):
    """A short checksum of a task list, for provenance."""
    return hashlib.sha256("\n".join(r["game"] for r in records).encode()).hexdigest()[:16]
