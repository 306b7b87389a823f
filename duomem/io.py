"""Files that never appear half-written, and episode logs that survive a kill -9."""

import contextlib
import json
import os
import tempfile
from pathlib import Path


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.isfile(tmp):  # mkstemp makes it private (0600); results are ordinary files
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl_atomic(path, records):
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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
