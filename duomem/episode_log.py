"""The resumable log of a job's finished records (episodes, teacher tries, extracted scripts).

Each record is appended and fsynced at once to a hidden `.<output>.partial.jsonl` beside the job's
output, under a fingerprint of the job's parameters: a killed job's rerun skips what is logged, and a
log written under other parameters is discarded rather than mixed in.
"""

import hashlib
import json
import os
from pathlib import Path

from .io import atomic_path


def fingerprint(params):
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def partial_log_path(output):
    p = Path(output)
    return p.with_name(f".{p.stem}.partial.jsonl")


class EpisodeLog:
    """Append-only JSONL of finished records, flushed and fsynced one record at a time.

    The first line is a header holding a fingerprint of everything that determines the records;
    a log written under another fingerprint is discarded, so a changed parameter never mixes old
    and new episodes. A torn last line (a kill during a write) is dropped on reopen.
    """

    def __init__(self, path, fingerprint):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.records = self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rewrite = not self.path.exists() or self._torn
        if rewrite:
            with atomic_path(self.path) as tmp:
                with open(tmp, "w") as f:
                    f.write(json.dumps({"fingerprint": fingerprint}) + "\n")
                    for r in self.records:
                        f.write(json.dumps(r, sort_keys=True) + "\n")
        self._f = open(self.path, "a")

    def _load(self):
        self._torn = False
        if not self.path.exists():
            return []
        lines = self.path.read_text().split("\n")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            header = {}
        if header.get("fingerprint") != self.fingerprint:
            self.path.unlink()
            return []
        records = []
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # torn final write
                self._torn = True
                break
        if lines[-1] != "":  # file did not end with a newline: rewrite it clean
            self._torn = True
        return records

    def done_ids(self, key="task_id"):
        return {r[key] for r in self.records}

    def append(self, record):
        self._f.write(json.dumps(record, sort_keys=True) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.records.append(record)

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
