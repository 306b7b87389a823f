from duomem.cli import run
from duomem.models import convert_gguf, packaged_gguf

# Guarded: environment workers are spawned processes that re-import this file.
if __name__ == "__main__":
    run(lambda: convert_gguf(packaged_gguf(), snakemake.output[0]), snakemake.log[0])
