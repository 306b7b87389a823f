"""What every Snakemake script shares: its log file, and a clear one-line error instead of a traceback."""

import contextlib
import sys

from .data import DataError
from .env import EnvError
from .errors import ConfigError
from .models import ModelError
from .policies.openai_backend import EndpointError
from .provenance import sidecar_path, write_job_provenance

KNOWN_ERRORS = (DataError, EnvError, ModelError, EndpointError, ConfigError)


def run(main, log_path=None, job=None):
    """Run `main()` with stdout/stderr appended to the rule's log; known failures exit 1 with one line.

    Once `main()` succeeded, the job's provenance sidecar is written (duomem.provenance). `job` is the
    script's `snakemake` object; by default the one of the running Snakemake script (`__main__`), so
    every script that calls `run` gets a sidecar. When `main()` returns a dict with a "provenance" key,
    those fields are added to the record (e.g. the adapter a selection file pointed to).
    """
    if job is None:
        job = getattr(sys.modules.get("__main__"), "snakemake", None)
    if job is not None:  # a sidecar left by an earlier run must not describe this one's outputs
        sidecar_path(job.output[0]).unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        if log_path:
            log = stack.enter_context(open(log_path, "a"))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        try:
            result = main()
            if job is not None:
                extra = result.get("provenance") if isinstance(result, dict) else None
                write_job_provenance(job, extra)
        except KNOWN_ERRORS as e:
            print(f"duomem error: {e}", file=sys.stderr)
            sys.__stderr__.write(f"duomem error: {e}\n")
            sys.exit(1)
