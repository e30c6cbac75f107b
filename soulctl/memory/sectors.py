"""The Memory OS sectors against the model's context: checked when a session opens, and a
turn that cannot fit refused before anything changes, naming the sector that is too big."""

from __future__ import annotations

from typing import TYPE_CHECKING

from soulctl.errors import ConfigError, InvalidInput
from soulctl.memory import notebook as nb

if TYPE_CHECKING:
    from soulctl.memory.conversation import Conversation

SECTORS = ("self_tokens", "notebook_tokens", "retrieved_tokens", "window_tokens", "reply_tokens")


def check_sectors(mem, context_length: int) -> None:
    """The Memory OS sectors, each at its largest, must fit the model's context together."""
    sizes = {name: getattr(mem, name) for name in SECTORS}
    if (total := sum(sizes.values())) > context_length:
        parts = " + ".join(f"{name.removesuffix('_tokens')} {size}" for name, size in sizes.items())
        raise ConfigError(f"the Memory OS sectors need {total} tokens ({parts}) but the model's "
                          f"context is {context_length}",
                          hint="lower memory.* in soul.yaml, or raise roles.soul.context")


def check_fits_alone(chat: Conversation, user_text: str, limit: int) -> None:
    """The message with the self-definition and the notebook alone (no window, nothing
    retrieved) must fit, or no flush could make room: refused before anything changes."""
    alone = [{"role": "system", "content": chat.system_text()}, {"role": "user", "content": user_text}]
    if (need := chat.engine.count_chat_tokens(alone)) > limit:
        raise too_big(chat, user_text, need, limit)


def too_big(chat: Conversation, user_text: str, need: int, limit: int) -> InvalidInput:
    """The refusal of a turn that cannot fit, naming the sector that is too big."""
    memory = nb.current_all(chat.soul)
    sizes = {kind: chat.count(memory[kind]["text"]) for kind in ("self", "notebook")}
    if sizes["self"] > chat.mem.self_tokens:
        return InvalidInput(f"the self-definition is {sizes['self']} tokens, over its sector of "
                            f"{chat.mem.self_tokens}: the prompt needs {need} of the {limit} the context "
                            "leaves after the reply", hint="shorten it: soulctl notebook rewrite --self, "
                            "or soulctl notebook set --self")
    if sizes["notebook"] > chat.mem.notebook_tokens:
        return InvalidInput(f"the notebook is {sizes['notebook']} tokens, over its sector of "
                            f"{chat.mem.notebook_tokens}: the prompt needs {need} of the {limit} the "
                            "context leaves after the reply", hint="shorten it: soulctl notebook set")
    return InvalidInput(f"the message is {chat.engine.count_tokens(user_text)} tokens: with the "
                        f"self-definition ({sizes['self']}) and the notebook ({sizes['notebook']}) the "
                        f"prompt needs {need} of the {limit} the context leaves after the reply",
                        hint="send a shorter message")
