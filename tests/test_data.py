import json
import shutil

import pytest

from duomem.data import FULL_COUNTS, TASK_TYPES, DataError, build_manifest, data_root, subset


@pytest.mark.parametrize("split", ["train", "valid_seen", "valid_unseen"])
def test_full_split_counts_and_order(data_root, split):
    records = build_manifest(data_root, split, expect_full=True)
    assert len(records) == FULL_COUNTS[split]
    assert [r["game"] for r in records] == sorted(r["game"] for r in records)
    assert {r["task_type"] for r in records} == set(TASK_TYPES)
    first = records[0]
    assert not first["game"].startswith("/") and first["game"].endswith("game.tw-pddl")
    assert (data_root / first["game"]).exists()
    assert first["task"] and not first["task"].startswith("Your task")


def test_task_text_matches_the_game(valid_unseen):
    r = next(r for r in valid_unseen if r["task_type"] == "pick_heat_then_place_in_recep")
    assert "hot" in r["task"] or "heat" in r["task"]


def test_subset_is_deterministic_and_per_type(data_root):
    a = build_manifest(data_root, "valid_unseen", per_task_type=2, seed=0)
    b = build_manifest(data_root, "valid_unseen", per_task_type=2, seed=0)
    c = build_manifest(data_root, "valid_unseen", per_task_type=2, seed=1)
    assert a == b and len(a) == 12
    assert all(sum(r["task_type"] == t for r in a) == 2 for t in TASK_TYPES)
    assert a != c
    assert subset(a, 1) == subset(a, 1)


def test_missing_data_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(DataError, match="alfworld-download.*ALFWORLD_DATA"):
        data_root("")
    with pytest.raises(DataError, match="No json_2.1.1"):
        data_root(str(tmp_path))


def test_empty_and_partial_split(tmp_path, data_root):
    (tmp_path / "json_2.1.1" / "valid_seen").mkdir(parents=True)
    with pytest.raises(DataError, match="empty"):
        build_manifest(tmp_path, "valid_seen")
    src = data_root / "json_2.1.1" / "valid_unseen"
    folder = sorted(src.iterdir())[0]
    shutil.copytree(folder, tmp_path / "json_2.1.1" / "valid_unseen" / folder.name)
    with pytest.raises(DataError, match="has 3 games; the full split has 134"):
        build_manifest(tmp_path, "valid_unseen", expect_full=True)
    assert len(build_manifest(tmp_path, "valid_unseen")) == 3  # one folder, three trials
    with pytest.raises(DataError, match="Unknown split"):
        build_manifest(tmp_path, "test")


def test_corrupt_game_file_is_named(tmp_path):
    game = tmp_path / "json_2.1.1" / "train" / "pick_and_place_simple-Apple-None-Fridge-1" / "trial_x" / "game.tw-pddl"
    game.parent.mkdir(parents=True)
    game.write_text("{not json")
    with pytest.raises(DataError, match=f"Corrupt or unreadable ALFWorld game file {game}"):
        build_manifest(tmp_path, "train")
    game.write_text(json.dumps({"grammar": "no task here"}))
    with pytest.raises(DataError, match="no task sentence"):
        build_manifest(tmp_path, "train")


# ---- through Snakemake: the manifest rule stops with one line naming the cause ----

def _one_game_folder(data_root, dest_root, split="valid_unseen"):
    src = sorted((data_root / "json_2.1.1" / split).iterdir())[0]
    dest = dest_root / "json_2.1.1" / split / src.name
    shutil.copytree(src, dest)
    return dest


@pytest.mark.parametrize("case", ["missing", "empty", "partial", "corrupt"])
def test_bad_data_stops_the_manifest_rule_with_one_line(tmp_path, data_root, case):
    import os

    from conftest import REPO, snakemake

    games = tmp_path / "games"
    overlay = {"alfworld_data": str(games)}
    env = dict(os.environ)
    if case == "missing":
        env.pop("ALFWORLD_DATA", None)
        overlay["alfworld_data"] = ""
        expected = "ALFWORLD_DATA is not set"
    elif case == "empty":
        (games / "json_2.1.1" / "valid_unseen").mkdir(parents=True)
        expected = "The split 'valid_unseen' is empty"
    elif case == "partial":
        _one_game_folder(data_root, games)
        overlay["data"] = {"expect_full": True}
        expected = "has 3 games; the full split has 134"
    else:
        bad = next(_one_game_folder(data_root, games).glob("trial_*/game.tw-pddl"))
        bad.write_text(bad.read_text()[:5000])  # truncated in the middle, like an interrupted copy
        expected = f"Corrupt or unreadable ALFWorld game file {bad}"
    (tmp_path / "bad.yaml").write_text(json.dumps(overlay))  # JSON is YAML
    target = "results/data/valid_unseen.jsonl"
    r = snakemake(target, "-c1", "--configfile", str(REPO / "config" / "smoke.yaml"), str(tmp_path / "bad.yaml"),
                  workdir=tmp_path, check=False, env=env)
    assert r.returncode != 0
    ours = [x for x in (r.stdout + r.stderr).splitlines() if x.startswith("duomem error:")]
    assert len(ours) == 1 and expected in ours[0], r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert ours[0] in (tmp_path / "results/logs/data/valid_unseen.log").read_text()
    assert not (tmp_path / target).exists()
