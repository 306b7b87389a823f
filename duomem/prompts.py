"""The agent's chat, laid out as the paper's eq. 2/4 and appendix F (figure 4).

1. system message: role, alfworld 0.4 command grammar, output format;
2. optional reference trajectory of the same task type, as alternating user/assistant turns;
3. first user message: the environment's first observation (room description e + task d),
   followed by a block of retrieved memory scripts when the configuration has them;
4. the episode: assistant (thought + action) / user (observation), full history kept.
"""

SYSTEM_PROMPT = """You are an agent in a simulated household. You complete the given task by issuing text commands, one per turn, and reading what the environment answers.

Commands (replace the braces with exact names from the observations, such as "apple 1" or "countertop 2"):
- go to {receptacle}
- open {receptacle}
- close {receptacle}
- take {object} from {receptacle}
- move {object} to {receptacle}
- examine {object or receptacle}
- use {object}
- heat {object} with {receptacle}
- clean {object} with {receptacle}
- cool {object} with {receptacle}
- look
- inventory

You must go to a receptacle before you can look into it or take from it, open closed receptacles before taking from them, and hold an object before you move, heat, clean or cool it. You can hold one object at a time. A command that is not possible gets the reply "Nothing happens."

Answer every turn in exactly this format:
Thought: <one or two short sentences of reasoning>
Action: <one command>"""

MEMORY_HEADER = "Here are procedural memories from similar tasks that were solved before:"


def memory_block(scripts):
    if not scripts:
        return ""
    lines = [MEMORY_HEADER] + [f"Memory {i}: {s.strip()}" for i, s in enumerate(scripts, 1)]
    return "\n".join(lines)


def first_user_message(observation, scripts=()):
    block = memory_block(scripts)
    return observation.strip() + ("\n\n" + block if block else "")


def format_turn(thought, action):
    return f"Thought: {thought.strip()}\nAction: {action.strip()}"


def initial_conversation(observation, reference=None, scripts=(), system_prompt=SYSTEM_PROMPT):
    """The messages the agent sees before its first action.

    `reference` is a list of {"role", "content"} turns of one solved trajectory (user first).
    """
    messages = [{"role": "system", "content": system_prompt}]
    if reference:
        if reference[0]["role"] != "user" or any(m["role"] not in ("user", "assistant") for m in reference):
            raise ValueError("a reference trajectory must alternate user/assistant turns, user first")
        messages.extend({"role": m["role"], "content": m["content"]} for m in reference)
    messages.append({"role": "user", "content": first_user_message(observation, scripts)})
    return messages
