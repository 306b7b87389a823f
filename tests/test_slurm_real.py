"""profiles/slurm on a real SLURM: a single-node cluster on this machine (scripts/slurm-local.sh, started
here when it is not running and stopped again afterwards), the real executor plugin, real sbatch,
squeue, scancel and time limits.

- the smoke config end to end through `--profile profiles/slurm` (the suite's shared smoke run goes
  through it: conftest `smoke_run`), every output checked (tests/test_workflow.py);
- the faults a cluster adds, on a throwaway workflow of its own: a job killed with `scancel`, a job
  that exits 1, a job over its time limit (TIMEOUT), and Snakemake itself killed with `kill -9` while
  its job runs on. Each ends, within a bounded time, with the workflow finished or a failure that
  names the SLURM state, and no output of a killed job is left half-written.

The fault workflows run side by side in the background (the TIMEOUT case alone needs over a minute:
SLURM's time limits are whole minutes)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import test_workflow
from conftest import REPO, SLURM_FAST, SLURM_PROFILE, SMOKE_CONFIG, SNAKEMAKE, snakemake

pytestmark = pytest.mark.slurm

PROFILE, FAST = SLURM_PROFILE, SLURM_FAST
# The smoke config's rules that run as SLURM jobs: the model jobs and those that read many files; all
# others are light and in the Snakefile's `localrules`.
SLURM_RULES = {"smollm2_from_gguf", "tiny_random_model", "collect_trajectories", "extract_memories",
               "embed_memories", "embed_tasks", "build_sft", "train_lora", "evaluate"}
CASE_TIMEOUT = 420  # seconds: a fault case that has not ended by then counts as hung


def _slurm(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def _jobs_in(workdir, state=None):
    """SLURM job ids whose working directory is `workdir` (in `state`, e.g. RUNNING)."""
    out = _slurm("squeue", "-h", "--states=all", "-o", "%i|%T|%Z").stdout
    return [i for i, s, d in (line.split("|", 2) for line in out.splitlines())
            if d == str(workdir) and (state is None or s == state)]


def _wait(condition, what, limit=240.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {limit:.0f} s")


@pytest.fixture(scope="module")
def cluster(slurm_cluster):
    return slurm_cluster


# ---- the faults, on a workflow of their own ----

# Each output is written in two steps with a pause between, as a real job writes: a killed attempt
# leaves "started" alone. `first.attempt` makes only a rule's first attempt slow.
FAULTS_SNAKEFILE = r'''
SLOW_FIRST = (
    "echo started >> {output}; "
    "if [ ! -e first.attempt ]; then touch first.attempt; sleep 600; fi; "
    "echo done >> {output}"
)


rule cancelled:
    output:
        "cancelled.txt",
    shell:
        SLOW_FIRST


rule overtime:
    output:
        "overtime.txt",
    resources:
        runtime=1,
    shell:
        SLOW_FIRST


rule exits_1:
    output:
        "exits_1.txt",
    shell:
        "echo started >> {output}; echo 'failing on purpose' >&2; exit 1"


rule upstream:
    output:
        "upstream.txt",
    shell:
        "echo done > {output}"


rule orphaned:
    input:
        "upstream.txt",
    output:
        "orphaned.txt",
    shell:
        "echo started >> {output}; sleep 45; echo done >> {output}"
'''


class Case:
    """One Snakemake run of the faults workflow, started in the background in its own folder."""

    def __init__(self, root, name, env):
        self.workdir = root / name
        self.workdir.mkdir(parents=True)
        (self.workdir / "Snakefile").write_text(FAULTS_SNAKEFILE)
        self.name, self.env, self.target = name, env, f"{name}.txt"
        self.runs = []  # (return code, log text, seconds) of each finished run

    def start(self, *extra):
        self.log = self.workdir / f"run{len(self.runs)}.log"
        self.t0 = time.time()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(SNAKEMAKE + [self.target, "--profile", PROFILE, *FAST, *extra],
                                         cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def finish(self):
        """Wait for the run (CASE_TIMEOUT at most: then it is killed and counts as hung)."""
        try:
            rc = self.proc.wait(timeout=max(1.0, CASE_TIMEOUT - (time.time() - self.t0)))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            rc = "hung"
        self.runs.append((rc, self.log.read_text(), time.time() - self.t0))
        return self.runs[-1]

    def run(self, *extra):
        self.start(*extra)
        return self.finish()

    def output(self):
        path = self.workdir / self.target
        return path.read_text() if path.exists() else None

    def running_job(self):
        """The id of this run's job once SLURM runs it and it has written its first line."""
        ids = _jobs_in(self.workdir, "RUNNING")
        return ids[0] if ids and (self.workdir / self.target).exists() else None


def _drive_cancelled(case):
    case.start()
    job = []
    _wait(lambda: job.append(case.running_job()) or job[-1], "the job to run")
    _slurm("scancel", job[-1])  # as a user or an admin would: SIGTERM, then SIGKILL
    case.cancelled = job[-1]
    case.finish()


def _crash(job):
    """The job's processes die at once, as on a node that lost power: all stopped first, then all
    SIGKILLed, so that nothing in the job (Snakemake's jobstep either) can clean up after itself."""
    out = _slurm("scontrol", "listpids", job).stdout
    pids = [int(line.split()[0]) for line in out.splitlines()[1:] if line.split()[:1] != ["-1"]]
    assert pids, f"no processes of job {job}: {out}"
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _drive_orphaned(case):
    """kill -9 of Snakemake while its job runs: the job runs on (SLURM knows nothing of it). It then
    crashes, leaving its output half-written; the README's steps (scancel the run's jobs, --unlock,
    the same command again) must run it again rather than take the half-written file for a finished
    one, and leave the finished upstream job alone."""
    case.start()
    job = []
    _wait(lambda: job.append(case.running_job()) or job[-1], "the job to run")
    os.killpg(case.proc.pid, signal.SIGKILL)
    case.proc.wait()
    case.runs.append(("killed", case.log.read_text(), time.time() - case.t0))
    time.sleep(3)
    case.orphans = _jobs_in(case.workdir, "RUNNING")
    _crash(job[-1])
    _wait(lambda: not _jobs_in(case.workdir, "RUNNING"), "the crashed job to end", 60)
    case.left = case.output()
    case.upstream_mtime = (case.workdir / "upstream.txt").stat().st_mtime_ns
    run_id = re.search(r"SLURM run ID: (\S+)", case.runs[-1][1]).group(1)
    _slurm("scancel", f"--name={run_id}")  # nothing left to cancel here, but that is the README's step
    case.unlock = subprocess.run(SNAKEMAKE + [case.target, "--profile", PROFILE, "--unlock"], cwd=case.workdir,
                                 env=case.env, capture_output=True, text=True, timeout=120)
    case.run()


@pytest.fixture(scope="module")
def faults(cluster, tmp_path_factory):
    """The four fault cases, started at once in background threads; `faults[name]` waits for one."""
    root = tmp_path_factory.mktemp("slurm-faults")
    cases = {name: Case(root, name, cluster) for name in ("cancelled", "overtime", "exits_1", "orphaned")}
    drivers = {"cancelled": _drive_cancelled, "orphaned": _drive_orphaned}
    errors = {}

    def drive(case):
        try:
            drivers.get(case.name, Case.run)(case)
        except BaseException as e:  # reported by the case's test
            errors[case.name] = e

    threads = {n: threading.Thread(target=drive, args=(c,), daemon=True) for n, c in cases.items()}
    for t in threads.values():
        t.start()

    class Results:
        def __getitem__(self, name):
            threads[name].join(CASE_TIMEOUT * 2 + 120)
            assert not threads[name].is_alive(), f"{name}: the case itself hung"
            if name in errors:
                raise errors[name]
            return cases[name]

    yield Results()
    for t in threads.values():
        t.join(CASE_TIMEOUT * 2 + 120)
    for case in cases.values():  # nothing of ours stays in the queue, whatever happened
        for job in _jobs_in(case.workdir):
            _slurm("scancel", job)


def _submissions(log):
    return re.findall(r"submitted with SLURM jobid (\d+)", log)


def test_smoke_config_through_the_slurm_profile(smoke_run, faults):
    """Every job of the smoke config (the shared smoke run goes through profiles/slurm, conftest):
    model jobs as SLURM jobs, light ones inside Snakemake (the Snakefile's localrules)."""
    log = (smoke_run.parent / "smoke-run.log").read_text()
    submitted = set(re.findall(r"slurm_logs/rule_([^/\s]+)/", log))
    assert submitted == SLURM_RULES, submitted  # any other (a light rule) would have queued
    # every output, checked as the local smoke run's are (a local dry run included: nothing to do)
    test_workflow.test_smoke_run_end_to_end(smoke_run)
    summary = snakemake("--summary", "--configfile", str(SMOKE_CONFIG), workdir=smoke_run).stdout
    outputs = [line.split("\t")[0] for line in summary.splitlines()[1:] if line.strip()]
    assert len(outputs) > 100
    for path in outputs:
        p = smoke_run / path
        assert p.exists() and (any(p.iterdir()) if p.is_dir() else p.stat().st_size > 0), path
    assert not list((smoke_run / ".snakemake" / "incomplete").iterdir())  # no job left half-done
    print(f"smoke config on SLURM: {len(_submissions(log))} SLURM jobs, {len(outputs)} outputs")


def test_a_cancelled_job_is_seen_and_run_again(faults):
    """scancel: squeue reports CANCELLED (sacct's "CANCELLED by 0" would leave Snakemake waiting
    forever), the profile's retry runs the job again, and the workflow finishes."""
    case = faults["cancelled"]
    rc, log, seconds = case.runs[-1]
    assert rc == 0, log[-4000:]
    assert f"SLURM-job '{case.cancelled}' failed, SLURM status is: 'CANCELLED'" in log, log[-4000:]
    assert len(_submissions(log)) == 2
    assert case.output() == "started\ndone\n"
    print(f"scancel case: {seconds:.0f} s")


def test_a_job_that_exits_1_fails_clearly_after_its_retries(faults):
    case = faults["exits_1"]
    rc, log, seconds = case.runs[-1]
    assert rc == 1, log[-4000:]
    assert len(_submissions(log)) == 3  # the first try and the profile's two retries
    assert log.count("SLURM status is: 'FAILED'") == 3, log[-4000:]
    assert "failing on purpose" in log  # show-failed-logs: the job's own stderr, in Snakemake's log
    assert case.output() is None  # nothing half-written stays
    print(f"exit 1 case: {seconds:.0f} s")


def test_a_job_over_its_time_limit_is_seen_and_run_again(faults):
    case = faults["overtime"]
    rc, log, seconds = case.runs[-1]
    assert rc == 0, log[-4000:]
    assert "SLURM status is: 'TIMEOUT'" in log, log[-4000:]
    assert len(_submissions(log)) == 2
    assert case.output() == "started\ndone\n"
    print(f"TIMEOUT case: {seconds:.0f} s")


def test_a_rerun_after_snakemake_was_killed_finishes_the_job(faults):
    case = faults["orphaned"]
    assert case.orphans, "the job should have run on after Snakemake died"
    assert case.left == "started\n"  # the crashed job's half-written output, on disk
    assert case.unlock.returncode == 0, case.unlock.stderr[-2000:]
    rc, log, seconds = case.runs[-1]
    assert rc == 0, log[-4000:]
    assert case.output() == "started\ndone\n"  # run again from scratch, not taken as finished
    assert (case.workdir / "upstream.txt").stat().st_mtime_ns == case.upstream_mtime  # done: not rerun
    assert len(_submissions(log)) == 1
    print(f"kill -9 case: {sum(s for _, _, s in case.runs):.0f} s")
