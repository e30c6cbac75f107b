"""The soul's own tools: its memory (search, add, ask, notebook and self-definition), its
corpora, resonance, its budget, and its hands."""

from __future__ import annotations

from soulctl.errors import InvalidInput
from soulctl.tools.registry import BadArguments, ToolContext, tool


@tool("search_memory", "Search the soul's log (every past conversation) by meaning and keyword.",
      {"query": {"type": "string", "description": "What to look for."},
       "k": {"type": "integer", "description": "How many hits (default 5)."},
       "with_embedding": {"type": "boolean", "description": "Include each hit's vector."}},
      required=("query",))
def search_memory(ctx: ToolContext, query: str, k: int = 5, with_embedding: bool = False) -> list[dict]:
    from soulctl.log.search import search

    k = max(1, min(int(k), 50))
    hits = search(ctx.soul.store, ctx.soul.embedder, query, k)
    rows = []
    for hit in hits:
        row = {"id": hit.packet.id, "ts": hit.packet.ts.isoformat(), "role": hit.packet.role,
               "session": hit.packet.session, "prose": hit.packet.prose, "score": round(hit.hit.score, 6)}
        if with_embedding:
            row["embedding"] = ctx.soul.store.get(hit.packet.id, with_embedding=True).embedding
        rows.append(row)
    return rows


@tool("read_notebook", "Read the soul's current notebook or self-definition.",
      {"which": {"type": "string", "enum": ["notebook", "self"]}})
def read_notebook(ctx: ToolContext, which: str = "notebook") -> dict:
    from soulctl.memory import notebook as nb

    if which not in nb.KINDS:
        raise InvalidInput(f"which must be one of {', '.join(nb.KINDS)}")
    return nb.current(ctx.soul, which)


@tool("update_notebook", "Replace the soul's notebook with new text (a new version; the old ones stay).",
      {"text": {"type": "string"}, "reason": {"type": "string"}}, required=("text",))
def update_notebook(ctx: ToolContext, text: str, reason: str | None = None) -> dict:
    from soulctl.memory import notebook as nb

    text, note = nb.fit_sector(ctx.soul, "notebook", text, force=False)
    version = nb.write(ctx.soul, "notebook", text, "soul", (reason or "updated by the soul") + note)
    return {"version": version}


@tool("rewrite_self", "The soul rewrites its own self-definition, with optional guidance.",
      {"guidance": {"type": "string"}}, engine=True)
def rewrite_self(ctx: ToolContext, guidance: str | None = None) -> dict:
    chat = ctx.chat or _session(ctx)
    return {"version": chat.rewrite_self(guidance or None)}


@tool("rewrite_notebook", "The soul (or its majordomo) rewrites its notebook, with optional guidance.",
      {"guidance": {"type": "string"}}, engine=True)
def rewrite_notebook(ctx: ToolContext, guidance: str | None = None) -> dict:
    chat = ctx.chat or _session(ctx)
    return {"version": chat.rewrite_notebook(guidance or None)}


PEER_MATCH = 0.999  # a peer's vector for the log's own model must be what that model gives


@tool("add_to_log", "Write a bifocal packet into the soul's log: its prose, and optionally the peer's own "
      "embedding of it (with embed_model): the log's model → checked against a fresh encode and stored as "
      "given; another model → re-embedded, the peer's vector kept in the packet's meta.",
      {"prose": {"type": "string"}, "text": {"type": "string", "description": "The old name of prose."},
       "role": {"type": "string", "description": "user (default), soul, majordomo, hands, tool or system."},
       "session": {"type": "string"},
       "meta": {"type": "object", "description": "Free-form metadata kept with the packet."},
       "embedding": {"type": "array", "items": {"type": "number"}},
       "embed_model": {"type": "string", "description": "The model that made `embedding`."}})
def add_to_log(ctx: ToolContext, prose: str | None = None, text: str | None = None, role: str = "user",
               session: str | None = None, meta: dict | None = None, embedding: list | None = None,
               embed_model: str | None = None) -> dict:
    import numpy as np

    from soulctl.log import NewPacket
    from soulctl.log.ingest import add_packets, check_embedder, check_prose, check_role, current_generation
    from soulctl.log.packets import check_vectors, new_session_id

    if (prose is None) == (text is None):
        raise BadArguments("add_to_log takes `prose` (or its old name `text`), once", "prose")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInput("meta must be a JSON object")
    if (embedding is None) != (embed_model is None):
        raise BadArguments("`embedding` and `embed_model` go together", "embed_model" if embedding else "embedding")
    soul = ctx.soul
    session = session or (ctx.chat.session if ctx.chat is not None else new_session_id())
    packet = NewPacket(prose=check_prose(prose if prose is not None else text), role=check_role(role),
                       session=session, meta=dict(meta or {}), generation=current_generation(soul.home))
    check_embedder(soul.store, soul.embedder)
    if embedding is None:
        written = list(add_packets(soul.store, soul.embedder, [packet]))
        return {"id": written[0].id, "seq": written[0].seq, "session": session}
    same_model = embed_model in (soul.embedder.model_id, soul.embedder.model_id.split("@")[0])
    try:  # finite, non-empty, bounded; the log's own model's vectors also of its width
        given = check_vectors(embedding, soul.embedder.dim if same_model else None)
    except InvalidInput as exc:
        raise BadArguments(exc.message, "embedding") from None
    if given.ndim != 1:
        raise BadArguments("`embedding` must be one list of numbers", "embedding")
    own = soul.embedder.encode([packet.prose])[0]
    if not same_model:
        packet.meta["peer_embedding"] = {"embed_model": embed_model, "embedding": [float(v) for v in given]}
        written = soul.store.add_then_index([packet], own[None, :], soul.embedder.model_id)
        return {"id": written[0].id, "seq": written[0].seq, "session": session, "embedding": "re-embedded"}
    cosine = float(given @ own / (np.linalg.norm(given) * np.linalg.norm(own) or 1.0))
    if cosine < PEER_MATCH:
        raise InvalidInput(f"the embedding is not {embed_model}'s for this prose (cosine {cosine:.4f} < {PEER_MATCH})")
    written = soul.store.add_then_index([packet], given[None, :] / np.linalg.norm(given), soul.embedder.model_id)
    return {"id": written[0].id, "seq": written[0].seq, "session": session, "embedding": "as given"}


@tool("ask_soul", "Ask the soul: a turn through its Memory OS (self-definition, notebook, memory, the "
      "session's window) in a named session, logged like any chat turn. Returns the reply as a bifocal packet.",
      {"message": {"type": "string"}, "session": {"type": "string", "description": "Default: a new one."},
       "with_embedding": {"type": "boolean", "description": "Also return the reply's embedding."}},
      required=("message",), engine=True)
def ask_soul(ctx: ToolContext, message: str, session: str | None = None, with_embedding: bool = False) -> dict:
    from soulctl.log.packets import new_session_id

    if ctx.chat is not None:
        raise InvalidInput("the soul cannot ask itself: answer in this turn")
    chat = _session(ctx, session or new_session_id())
    result = chat.turn(message)
    out = {"prose": result.reply, "id": result.reply_id, "user_id": result.user_id, "session": chat.session,
           "generation": result.generation, "answered_by": result.speaker, "retrieved": result.retrieved}
    if with_embedding:
        out["embedding"] = [float(v) for v in ctx.soul.embedder.encode([result.reply])[0]]
        out["embed_model"] = ctx.soul.embedder.model_id
    return out


@tool("search_corpus", "Search indexed corpora (the mounted ones, or those named) by meaning and keyword.",
      {"query": {"type": "string"}, "corpora": {"type": "array", "items": {"type": "string"}},
       "k": {"type": "integer", "description": "How many hits (default 5)."}}, required=("query",))
def search_corpus(ctx: ToolContext, query: str, corpora: list | None = None, k: int = 5) -> list[dict]:
    from soulctl.corpus.mounts import Wardrobe

    k = max(1, min(int(k), 50))
    wardrobe = getattr(ctx.chat, "wardrobe", None) or Wardrobe(ctx.soul.home)
    return [{"corpus": h.corpus, "cite": h.cite, "text": h.text, "score": round(h.score, 6)}
            for h in wardrobe.search(query, ctx.soul.embedder, k, corpora=corpora or None)]


@tool("mark_resonance", "Mark how much a packet of the log resonates, 0 to 1 (a new record; the packet never changes).",
      {"id": {"type": "string", "description": "The packet id (or a unique prefix)."},
       "score": {"type": "number"}}, required=("id", "score"))
def mark_resonance(ctx: ToolContext, id: str, score: float) -> dict:
    from soulctl.evolve.resonate import mark

    score = float(score)
    return {"id": mark(ctx.soul.store, id, score), "resonance": score}


@tool("budget", "Whether the soul's models, KV cache and stores fit in this machine's RAM (soul.yaml's stack).", {})
def budget(ctx: ToolContext) -> dict:
    from soulctl.budget.plan import plan_budget

    report = plan_budget(home=ctx.soul.home, stores=ctx.soul.resident_files()).as_dict()
    return {key: report[key] for key in ("fits", "zone", "total_bytes", "ram_bytes", "headroom_bytes",
                                         "warnings") if key in report}


@tool("mount_corpus", "Put on a corpus (an indexed repository) as part of the soul's outfit.",
      {"name": {"type": "string"}}, required=("name",))
def mount_corpus(ctx: ToolContext, name: str) -> dict:
    from soulctl.corpus import mounts

    return {"mounted": mounts.use(ctx.soul.home, [name], add_to=True)}


@tool("unmount_corpus", "Take a corpus off (all of them without a name).", {"name": {"type": "string"}})
def unmount_corpus(ctx: ToolContext, name: str | None = None) -> dict:
    from soulctl.corpus import mounts

    return {"mounted": mounts.off(ctx.soul.home, name or None)}


@tool("list_corpora", "The corpora indexed in this soul home and which are mounted.", {})
def list_corpora(ctx: ToolContext) -> list[dict]:
    from soulctl.corpus import mounts

    on = set(mounts.mounted(ctx.soul.home))
    return [{"name": d.name, "mounted": d.name in on}
            for d in sorted(ctx.soul.home.corpora.glob("*")) if (d / "manifest.json").is_file()]


@tool("invoke_agent", "Hand a construction task to the soul's coding agent (its hands) and get its result.",
      {"task": {"type": "string"}, "constraints": {"type": "string"}}, required=("task",))
def invoke_agent(ctx: ToolContext, task: str, constraints: str | None = None) -> dict:
    session = ctx.chat.session if ctx.chat is not None else None
    from soulctl.hands import invoke_agent as hands

    result = hands(ctx.soul, task, constraints or None, session=session)
    return {"ok": result.ok, "result": result.result, "request_id": result.request_id,
            "result_id": result.result_id}


def _session(ctx: ToolContext, session: str | None = None):
    """A conversation of its own for a tool called outside one (MCP), handed these tools."""
    from soulctl.memory.session import open_session
    from soulctl.tools.registry import Toolbox

    return open_session(ctx.soul, session, tools=Toolbox())
