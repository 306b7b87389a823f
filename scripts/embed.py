from duomem.cli import run
from duomem.retrieval import embed_task_file


def main(sm):
    kwargs = {}
    if sm.wildcards.embedder == "openai-3-small":
        kwargs = {"base_url": sm.params.base_url, "api_key_env": sm.params.api_key_env}
    embed_task_file(sm.input[0], sm.output.npy, sm.output.ids, sm.wildcards.embedder, **kwargs)


# Guarded: spawned worker processes re-import this file.
if __name__ == "__main__":
    run(lambda: main(snakemake), snakemake.log[0])
