"""What every Snakemake script shares: its log file, and a clear one-line error instead of a traceback."""

import contextlib
import sys

from .config_check import ConfigError
from .data import DataError
from .env import EnvError
from .models import ModelError
from .policies.openai_backend import EndpointError

KNOWN_ERRORS = (DataError, EnvError, ModelError, EndpointError, ConfigError)


def run(main, log_path=None):
    """Run `main()` with stdout/stderr appended to the rule's log; known failures exit 1 with one line."""
    with contextlib.ExitStack() as stack:
        if log_path:
            log = stack.enter_context(open(log_path, "a"))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        try:
            main()
        except KNOWN_ERRORS as e:
            print(f"duomem error: {e}", file=sys.stderr)
            sys.__stderr__.write(f"duomem error: {e}\n")
            sys.exit(1)
