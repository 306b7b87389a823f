import json
import os
import time

from duomem.env import NOTHING_HAPPENS, EnvPool, Game, task_params_from_folder


def _walkthrough(game_file):
    # The stored solution is read only by this test, to check that `won` is detected; no agent sees it.
    return json.loads(game_file.read_text())["walkthrough"]


def test_reset_step_and_won_on_a_real_game(data_root, valid_unseen):
    task = valid_unseen[0]
    game_file = data_root / task["game"]
    game = Game(game_file, max_steps=30)
    first = game.first
    assert first["observation"].startswith("-= Welcome to TextWorld, ALFRED! =-")
    assert f"Your task is to: {task['task']}." in first["observation"]
    assert "look" in first["admissible"] and not first["won"]
    bad = game.step("fly to the moon")
    assert bad["observation"] == NOTHING_HAPPENS and not bad["won"]
    result = None
    for action in _walkthrough(game_file):
        result = game.step(action)
    assert result["won"]
    game.close()


def test_expert_targets_from_folder_name():
    p = task_params_from_folder("x/valid_unseen/look_at_obj_in_light-AlarmClock-None-DeskLamp-308/trial_T1/game.tw-pddl")
    assert p["object_target"] == "AlarmClock" and p["toggle_target"] == "DeskLamp" and p["parent_target"] == ""
    p = task_params_from_folder("x/train/pick_heat_then_place_in_recep-Mug-None-Cabinet-5/trial_T1/game.tw-pddl")
    assert p["parent_target"] == "Cabinet" and p["mrecep_target"] == ""


def test_pool_resets_overlap_and_never_block_the_caller(data_root, valid_unseen):
    tasks = valid_unseen[:3]
    t0 = time.time()
    with EnvPool(3, max_steps=30, expert=True) as pool:
        for slot, task in enumerate(tasks):
            pool.reset(slot, data_root / task["game"], seed=slot)
        # reset() only sends the request: had it waited for the game, its result would be here now
        assert pool.collect(block=False) == {}
        got = {}
        while len(got) < 3:
            got.update(pool.collect(block=True))
        assert all("expert_plan" in r for r in got.values())
        pool.step(0, got[0]["expert_plan"][0])
        assert not pool.collect(block=True)[0]["won"]
    # The workers' CPU time (the benchmark's env_cpu_seconds): three resets cost real CPU (about 0.5 s
    # each), and it is the workers' own: processes that lived inside the window cannot have used
    # more than every core for all of it.
    assert 0.3 < pool.cpu_seconds <= os.cpu_count() * (time.time() - t0)


def test_textworld_caches_change_nothing_the_game_says(data_root, tmp_path):
    """duomem.env caches textworld's PDDL translation and grammar parses (2-3x faster resets and
    steps); an expert episode must read exactly the same with and without them."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from duomem.data import build_manifest, data_root\n"
        "from duomem.env import Game\n"
        "root = data_root()\n"
        "t = [t for t in build_manifest(root, 'valid_unseen', per_task_type=1, seed=5)"
        " if t['task_type'] == 'pick_cool_then_place_in_recep'][0]\n"
        "g = Game(root / t['game'], 30, expert=True, seed=1)\n"
        "r = g.first; seen = [r]\n"
        "while not r['won'] and r['expert_plan'] and len(seen) < 30:\n"
        "    r = g.step(r['expert_plan'][0]); seen.append(r)\n"
        "json.dump(seen, open(OUT, 'w'))\n"
    )
    outs = []
    for flag in ("", "1"):
        out = tmp_path / f"run{flag or 0}.json"
        env = {**os.environ, "DUOMEM_NO_ENV_CACHE": flag}
        subprocess.run([sys.executable, "-c", f"OUT = {str(out)!r}\n" + script], env=env, check=True)
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]
    assert len(outs[0]) > 5 and outs[0][-1]["won"]  # a whole solved episode, with admissible commands
