"""ALFWorld text games on `game.tw-pddl` files, each in its own worker process.

alfworld's `AlfredTWEnv` needs `traj_data.json` beside every game, walks folders in filesystem
order and drops its expert type, so games are registered directly with textworld here. Resets
cost 1-2.5 s, so every episode slot owns a worker process: resets and steps of different
episodes overlap each other and the model's forward passes.
"""

import contextlib
import copy
import functools
import multiprocessing as mp
import os
import random
import sys
import time
from multiprocessing.connection import wait

NOTHING_HAPPENS = "Nothing happens."


class EnvError(RuntimeError):
    """A game could not be loaded or stepped."""


def task_params_from_folder(game_file):
    """The handcoded expert's targets, read from the game folder's name
    (`<task_type>-<Object>-<MovableRecep>-<Recep>-<scene>`) instead of the `traj_data.json`
    alfworld expects beside every game."""
    from pathlib import Path

    task_type, obj, mrecep, recep, _ = Path(game_file).parent.parent.name.split("-")
    lit = task_type == "look_at_obj_in_light"
    return {"task_type": task_type, "object_target": obj, "object_sliced": False,
            "mrecep_target": "" if mrecep == "None" else mrecep,
            "parent_target": "" if lit else recep, "toggle_target": recep if lit else ""}


EXPERT_SEARCHES = ("alfworld", "descending")


def _instances_ascending(receptacles):
    """{name: class} in the room's order of classes, each class's instances by ascending number."""
    classes = list(dict.fromkeys(receptacles.values()))
    number = lambda name: int(name.split()[-1]) if name.split()[-1].isdigit() else 0  # noqa: E731
    return {n: cls for cls in classes for n in sorted((n for n, c in receptacles.items() if c == cls), key=number)}


class _ExpertTweaks:
    """Mixed into the handcoded expert's task policy.

    A command answered "Nothing happens." changed nothing, but alfworld's state tracking would
    still take a failed `go to X` as being at X. The expert's own commands are always admissible,
    so this matters only after the mistakes injected into teacher collection
    (duomem.policies.perturbed), from which the expert must recover.

    `search = "descending"` (the CPU default's addition, `models.<expert>.search`): the expert
    checks the instances of a receptacle class from the highest number down to 1, and `go to` a
    class means its instance 1. alfworld's expert searches the same receptacles in the same class
    order, but counts instances up ("shelf 1, shelf 2, ..."), so when to stop depends on the room's
    highest number; counting down always ends at 1, which every room has."""

    search = "alfworld"

    def update_state_tracking(self, game_state, last_action):
        if NOTHING_HAPPENS.rstrip(".") in game_state["feedback"]:
            return
        super().update_state_tracking(game_state, last_action)

    def observe(self, obs):
        super().observe(obs)
        if self.search == "descending" and "Welcome" in obs:
            # the expert checks receptacles popping from the end of a list in this order
            self.receptacles = _instances_ascending(self.receptacles)


def expert_mode(backend, search=None):
    """The environment's `expert` argument for a policy backend: the expert's search order, or
    False (no expert plan computed) for a model."""
    if backend != "expert":
        return False
    if (search or "alfworld") not in EXPERT_SEARCHES:
        raise ValueError(f"unknown expert search {search!r}; allowed: {', '.join(EXPERT_SEARCHES)}")
    return search or "alfworld"


def expert_state(policy, first=False):
    """What the handcoded expert's task policy knows when it chooses its next command, as plain
    data for its thought (duomem.policies.expert.reasoned_thought): the task, the current subgoal,
    the receptacles still to check in the order it will visit them, where it saw the subgoal's
    object, what it holds."""
    params = {k: str(v).lower() for k, v in policy.task_params.items()}
    idx = min(policy.subgoal_idx, len(policy.subgoals) - 1)
    subgoal = policy.subgoals[idx]
    target = str(subgoal["param"]).lower()
    return {
        "first": bool(first), "task_type": params["task_type"], "object": params["object_target"],
        "place": params["parent_target"], "light": params["toggle_target"],
        "subgoal": subgoal["action"], "target": target, "subgoal_index": idx,
        "to_check": list(reversed(policy.receptacles_to_check)),  # it visits from the list's end
        "seen_at": policy.obj_cls_to_receptacle_map.get(target, ""), "holding": list(policy.inventory),
    }


def _expert_wrapper(search="alfworld"):
    from alfworld.agents.environment.alfred_tw_env import AlfredExpert
    from alfworld.agents.expert import HandCodedTWAgent
    from alfworld.gen import constants

    class FolderHandCodedAgent(HandCodedTWAgent):
        def reset(self, game="INVALID"):
            params = task_params_from_folder(game)
            self.task_params = {k: v.lower() if v in constants.OBJECTS else v for k, v in params.items()}
            policy_class = self.get_task_policy(self.task_params)
            robust = type(policy_class.__name__, (_ExpertTweaks, policy_class), {"search": search})
            self.policy = robust(self.task_params, max_steps=self.max_steps)

    class FolderAlfredExpert(AlfredExpert):
        def load(self, gamefile):
            super().load(gamefile)
            self._handcoded_expert = FolderHandCodedAgent(max_steps=200)

        def _gather_infos(self):
            super()._gather_infos()
            self.state["extra.expert_state"] = expert_state(self._handcoded_expert.policy, first=not self.prev_command)

    return FolderAlfredExpert(expert_type="handcoded")


def _cache_pddl_translation():
    """textworld translates a game's PDDL with fast_downward twice on load and twice again on
    reset (plain and optimized, each time the same inputs): half of a reset's 1-2.5 s. The
    translation is a pure function of (domain, problem, flags) and its result is only read, so
    the reset reuses what the load computed."""
    import fast_downward

    if getattr(fast_downward.pddl2sas, "duomem_cached", False):
        return
    cached = functools.lru_cache(maxsize=4)(fast_downward.pddl2sas)
    cached.duomem_cached = True
    fast_downward.pddl2sas = cached


def _cache_text_grammar():
    """textworld re-parses the same text-grammar templates with tatsu on every step (each admissible
    command and each reply is derived from a template): about 60 % of a step's cost. The parse of a
    template string is a pure function; its symbols are mutated while deriving, so each use gets a
    deep copy of the cached parse."""
    from textworld.envs.pddl import textgen

    if getattr(textgen._parse_and_convert, "duomem_cached", False):
        return
    parse = textgen._parse_and_convert

    @functools.lru_cache(maxsize=8192)
    def parsed(text, rule_name):
        return parse(text, rule_name=rule_name)

    def cached(text, rule_name=None, **kwargs):  # kwargs: tatsu's trace flag only
        return copy.deepcopy(parsed(text, rule_name))

    cached.duomem_cached = True
    textgen._parse_and_convert = cached


def make_game_env(game_file, max_steps, expert):
    import textworld
    import textworld.gym
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    if not os.environ.get("DUOMEM_NO_ENV_CACHE"):  # debugging textworld: run it unpatched
        _cache_pddl_translation()
        _cache_text_grammar()
    extras = ["gamefile", "expert_plan", "expert_state"] if expert else ["gamefile"]
    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=extras)
    wrappers = [AlfredDemangler(shuffle=False), AlfredInfos]
    if expert:
        wrappers.append(_expert_wrapper("alfworld" if expert is True else expert))
    env_id = textworld.gym.register_game(
        str(game_file), infos, batch_size=1, asynchronous=False,
        max_episode_steps=max_steps + 1,  # our own counter ends the episode; keep textworld out of the way
        wrappers=wrappers,
    )
    return textworld.gym.make(env_id)


def _unbatch(obs, infos, expert):
    out = {
        "observation": obs[0],
        "won": bool(infos["won"][0]),
        "admissible": list(infos["admissible_commands"][0] or []),
    }
    if expert:
        plan = infos.get("extra.expert_plan", [[]])[0]
        out["expert_plan"] = list(plan or [])
        out["expert_state"] = infos.get("extra.expert_state", [None])[0]
    return out


class Game:
    """One ALFWorld game: reset -> first observation; step -> observation, won, admissible commands."""

    def __init__(self, game_file, max_steps=30, expert=False, seed=0):
        self.game_file, self.expert = str(game_file), expert
        random.seed(seed)  # the handcoded expert draws from the global `random`
        try:
            self.env = make_game_env(game_file, max_steps, expert)
            obs, infos = self.env.reset()
        except Exception as e:  # textworld raises many kinds on a bad file
            raise EnvError(f"Could not load ALFWorld game {game_file}: {type(e).__name__}: {e}") from None
        self.first = _unbatch(obs, infos, expert)

    def step(self, action):
        try:
            obs, _, _, infos = self.env.step([action])
        except Exception as e:
            if self.expert and "Timeout" in str(e):  # the handcoded expert gives up after 200 steps
                return {"observation": NOTHING_HAPPENS, "won": False, "admissible": [], "expert_plan": []}
            raise EnvError(f"ALFWorld game {self.game_file} failed on {action!r}: {type(e).__name__}: {e}") from None
        return _unbatch(obs, infos, self.expert)

    def close(self):
        self.env.close()


def _worker(conn, max_steps, expert):
    game = None
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "reset":
                if game is not None:
                    game.close()
                game = Game(msg[1], max_steps, expert, seed=msg[2])
                conn.send(("ok", game.first))
            elif msg[0] == "step":
                conn.send(("ok", game.step(msg[1])))
            elif msg[0] == "close":
                conn.send(("cpu", time.process_time()))  # what this worker cost (benchmark)
                break
        except Exception as e:
            conn.send(("error", str(e)))
    if game is not None:
        game.close()
    conn.close()


# Workers are forked from a fork server that has imported textworld and alfworld once: starting
# a worker then costs milliseconds instead of a Python start and 1-2 s of imports (a spawn). The
# fork server is a fresh process, so no worker is forked from a process holding torch threads.
_PRELOAD = ["duomem.env", "textworld.gym", "fast_downward", "alfworld.agents.environment.alfred_tw_env"]


def _context():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


@contextlib.contextmanager
def _main_module_hidden():
    """multiprocessing re-imports the parent's main module in every child (so that targets defined
    there can be found); the workers' target lives in this module, and a main module that imports
    torch and transformers would cost each worker ~2 s. Children are told of no main module while
    the workers start (Python 3.11's fork server ignores a "__main__" preload)."""
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)


class EnvPool:
    """`size` worker processes; requests go out at once and answers are collected as they arrive."""

    def __init__(self, size, max_steps=30, expert=False):
        ctx = _context()
        self.conns, self.procs = [], []
        with _main_module_hidden():
            for _ in range(size):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, max_steps, expert), daemon=True)
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
        self.busy = set()

    def __len__(self):
        return len(self.conns)

    def reset(self, slot, game_file, seed):
        self._send(slot, ("reset", str(game_file), seed))

    def step(self, slot, action):
        self._send(slot, ("step", action))

    def _send(self, slot, msg):
        assert slot not in self.busy, f"slot {slot} already has a request in flight"
        self.conns[slot].send(msg)
        self.busy.add(slot)

    def collect(self, slots=None, block=True):
        """Answers that have arrived, as {slot: result}. With block, wait until at least one
        answer from `slots` (default: any busy slot) is in."""
        waiting = set(self.busy if slots is None else slots) & self.busy
        ready = {}
        timeout = None if (block and waiting) else 0
        for conn in wait([self.conns[s] for s in self.busy], timeout=timeout):
            slot = self.conns.index(conn)
            try:
                status, payload = conn.recv()
            except (EOFError, OSError):  # the worker died: EOF, or a reset connection
                raise EnvError(f"ALFWorld worker {slot} died (out of memory or killed)") from None
            self.busy.discard(slot)
            if status == "error":
                raise EnvError(payload)
            ready[slot] = payload
        return ready

    def close(self):
        """Stop the workers; `cpu_seconds` is then the CPU time they used in all (resets, steps)."""
        self.cpu_seconds = 0.0
        for conn, proc in zip(self.conns, self.procs):
            try:
                conn.send(("close",))
                while conn.poll(5):  # skip an answer still in flight, then the worker's CPU time
                    status, payload = conn.recv()
                    if status == "cpu":
                        self.cpu_seconds += payload
                        break
            except (BrokenPipeError, EOFError, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
