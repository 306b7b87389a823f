"""An episode record (duomem.agent) as chat turns: the teacher's trajectories (duomem.collect) and the
reference trajectories (duomem.references) are both stored this way."""


def trajectory_messages(record):
    """The episode as chat turns: first observation, then assistant/user pairs (the environment's
    answer to the last action is kept)."""
    msgs = [{"role": "user", "content": record["first_observation"]}]
    for turn in record["turns"]:
        msgs.append({"role": "assistant", "content": turn["completion"]})
        msgs.append({"role": "user", "content": turn["observation"]})
    return msgs
