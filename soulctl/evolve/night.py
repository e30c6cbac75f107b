"""The night shares the machine with the day (DESIGN §12).

Before the first step that loads weights (the dream), the cycle asks the budget whether that
step and the merge fit beside what the running server holds. When they do, nothing happens;
when they fit only with the soul's weights released, the server is asked to release them under
a lease the cycle renews (a server whose cycle dies loads `current` again when the lease lapses;
a cycle whose server dies goes on); when they do not fit even then, the cycle stops (exit 1)
with the numbers. After the cycle, released or not, the server is told to serve `current`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Callable

from soulctl.errors import CheckFailed

if TYPE_CHECKING:
    from soulctl.soul import Soul

log = logging.getLogger(__name__)


def night_plan(serve, recipe, tokens: int | None = None, stored_bytes: int | None = None) -> dict:
    """Every phase beside `serve` (a Budget) for `budget` and `evolve`: the dream as the recipe's
    trainer says it needs — without and with gradient checkpointing, the recipe's choice first —
    the merge of what that trainer's adapter touches, and the night. `auto` is the trainer of
    the machine the budget is for (mlx_lora on Apple silicon, else peft_lora)."""
    from soulctl.budget.phases import plan, stored_bytes_of
    from soulctl.evolve.trainers import known, pick

    if recipe.trainer == "auto" and recipe.device != "mlx":
        name = "mlx_lora" if serve.apple_silicon else "peft_lora"
        trainer = known()[name]()
    else:
        trainer = pick(recipe, check_installed=False)
    info = serve.models[0].info
    stored = stored_bytes or stored_bytes_of(serve)
    tokens = tokens or recipe.train.max_seq_len
    flipped = recipe.model_copy(update={"train": recipe.train.model_copy(
        update={"gradient_checkpointing": not recipe.train.gradient_checkpointing})})
    dreams = {}
    for r in (recipe, flipped):
        dreams[("with" if r.train.gradient_checkpointing else "without") + "_checkpointing"] = \
            trainer.memory(info.arch, info.params, r, tokens, stored)
    chosen = ("with" if recipe.train.gradient_checkpointing else "without") + "_checkpointing"
    night = plan(serve, dreams[chosen], trainer.touches(recipe), stored)
    training = {"trainer": trainer.name, "tokens": tokens, "stored_bytes": stored, "r": recipe.lora.r,
                "targets": list(recipe.lora.target_modules), "batch": recipe.train.batch_size,
                "checkpointing": recipe.train.gradient_checkpointing}
    return {"serve": {"bytes": serve.total_bytes, "fits": serve.fits},
            "dream": {**{k: {"bytes": sum(c["bytes"] for c in v), "components": v} for k, v in dreams.items()},
                      "recipe": chosen, "training": training},
            "merge": {"bytes": sum(c["bytes"] for c in night["merge"]), "components": night["merge"]},
            "night": night["night"]}


def phases(soul: Soul, examples: list[str] | None = None) -> dict:
    """The night's plan for this soul (evolve): its dream and merge beside its server, the
    dream's examples as long as the longest of `examples` (the buffer's candidates:
    evolve/buffer.sizing_examples), at most the recipe's max_seq_len."""
    from soulctl.budget.plan import plan_budget

    recipe = soul.recipe("dream")
    tokens = recipe.train.max_seq_len
    if examples is not None:
        tokens = min(tokens, _longest(soul, examples))
    serve = plan_budget(home=soul.home, stores=soul.resident_files())
    return {"serve_budget": serve, **home_plan(soul, serve, tokens)}


def home_plan(soul: Soul, serve, tokens: int | None = None) -> dict:
    """The night by this home's dream recipe and stored weights beside `serve` (the budget the
    caller computed: soul.yaml's own, or one with the command line's overrides)."""
    return night_plan(serve, soul.recipe("dream"), tokens, _stored_bytes(soul))


class Night:
    """The cycle's side of the lease: entered before the first step that loads weights."""

    def __init__(self, soul: Soul, lease_s: float, say: Callable[[str], None] | None = None):
        self.soul, self.lease_s = soul, lease_s
        self.say = say or log.info
        self.released = False
        self.plan: dict | None = None
        self._stop = threading.Event()

    def enter(self, examples: list[str] | None = None) -> dict:
        """Check the night's plan (sized on `examples`, as the dry run was); release the
        server's soul when it must be. Returns what was decided, for the cycle's record."""
        from soulctl.home import control

        plan = phases(self.soul, examples)["night"]
        self.plan = plan
        server = control.running(self.soul.home)
        decided = {"release": plan["release"], "server": bool(server)}
        if plan["release"] == "not enough":
            dream = plan["phases"]["dream"]["server_released"]
            raise CheckFailed(f"the dream needs {_gib(dream['bytes'])} beside {_gib(dream['beside_bytes'])} the "
                              f"server keeps even released: {_gib(dream['total_bytes'])} of {_gib(dream['ram_bytes'])}",
                              hint="lower recipes/dream.yaml train.batch_size or max_seq_len, or train elsewhere "
                                   "(soulctl dream --export-bundle)")
        if plan["release"] == "needed" and server:
            answer = control.ask(self.soul.home, {"op": "release", "holder": os.getpid(), "lease": self.lease_s,
                                                  "reason": "the night's dream"}, timeout=600)
            if answer and answer.get("ok"):
                self.released = True
                self.say(f"the server released the soul's weights (lease {self.lease_s:g} s)")
                threading.Thread(target=self._renew, name="soulctl-lease", daemon=True).start()
            else:
                self.say("the server did not answer the release; the cycle goes on beside it")
        return {**decided, "released": self.released}

    def _renew(self) -> None:
        from soulctl.home import control

        while not self._stop.wait(self.lease_s / 3):
            answer = control.ask(self.soul.home, {"op": "renew", "holder": os.getpid(), "lease": self.lease_s})
            if not (answer and answer.get("ok")):
                self.say("the server is gone or no longer holds the lease; the cycle goes on")
                return

    def close(self) -> dict | None:
        """After the cycle: the server serves `current` — restored when released, else told to
        follow it. Returns its answer (None when no server runs)."""
        from soulctl.home import control

        self._stop.set()
        op = "restore" if self.released else "follow"
        answer = control.ask(self.soul.home, {"op": op, "holder": os.getpid()}, timeout=600)
        if answer and answer.get("generation"):
            self.say(f"the server serves {answer['generation']}")
        return answer


def _stored_bytes(soul: Soul) -> int:
    """Bytes per weight of the current generation's files (4 for float32)."""
    import json

    from soulctl.generations import current

    config = soul.home.generations / (current(soul.home) or "gen-0000") / "config.json"
    try:
        dtype = json.loads(config.read_text()).get("torch_dtype") or json.loads(config.read_text()).get("dtype")
    except (OSError, ValueError):
        dtype = None
    return {"float32": 4, "bfloat16": 2, "float16": 2}.get(str(dtype), 4)


def _longest(soul: Soul, examples: list[str]) -> int:
    """The longest example (chat lines as a buffer holds them) in the generation's tokens (a
    light tokenizer read)."""
    import json

    from tokenizers import Tokenizer

    from soulctl.generations import current

    tokenizer = Tokenizer.from_file(str(soul.home.generations / (current(soul.home) or "gen-0000") / "tokenizer.json"))
    longest = 0
    for line in examples:
        if line.strip():
            text = "\n".join(m.get("content", "") for m in json.loads(line).get("messages", []))
            longest = max(longest, len(tokenizer.encode(text).ids) + 8 * len(json.loads(line)["messages"]))
    return max(longest, 16)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
