"""The console's routes: five pages rendered on the server, the Now page's live feed, and the
few writes, each the same library call the CLI makes (a chat turn through the Memory OS,
`resonate mark`, `notebook revert`, a night started as its own process)."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from soulctl.serve.console import views
from soulctl.serve.console.guard import Guard, Refusal

if TYPE_CHECKING:
    from soulctl.serve.context import Served

HERE = Path(__file__).parent
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
FEED_S = 1.0  # how often the Now feed looks at the state


ROUTES = (  # method, path, handler; each but the feed and the static files answers a refusal with a page
    ("GET", "/", "now"), ("GET", "/lineage", "lineage"), ("GET", "/lineage/{gid}", "generation"),
    ("GET", "/memory", "memory"), ("GET", "/packet/{packet_id}", "packet"), ("GET", "/resonance", "resonance"),
    ("GET", "/chat", "chat"), ("POST", "/chat", "chat_turn"), ("POST", "/mark", "mark"),
    ("POST", "/notebook/revert", "revert"), ("POST", "/night", "night"), ("GET", "/login", "login_page"),
    ("POST", "/login", "login"), ("POST", "/logout", "logout"))


def build_router(served: Served, guard: Guard) -> APIRouter:
    pages = Pages(served, guard)
    router = APIRouter()
    for method, path, name in ROUTES:
        router.add_api_route(path, pages.guarded(getattr(pages, name)), methods=[method], include_in_schema=False)
    router.add_api_route("/events", pages.events, methods=["GET"], include_in_schema=False)
    router.add_api_route("/static/{name}", pages.static, methods=["GET"], include_in_schema=False)
    return router


class Pages:
    """The console's handlers, over one server's shared state and its guard."""

    def __init__(self, served: Served, guard: Guard):
        self.served, self.guard = served, guard
        self.soul = served.soul
        self.templates = _templates()
        self.console = Console(served)

    # -- what every handler shares ----------------------------------------------------------------
    def page(self, request: Request, name: str, status: int = 200, **data) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            csrf=self.guard.csrf(_headers(request)), signed_in=self.guard.token is not None,
            path=request.url.path, generation=self.served.generation, **data)
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def guarded(self, fn):
        """A page or a write whose refusals and the soul's errors are a page saying why."""
        from soulctl.errors import NotFound, SoulError
        from soulctl.serve.slot import Busy

        @functools.wraps(fn)
        async def answer(request: Request, *args, **kwargs):
            try:
                return await fn(request, *args, **kwargs)
            except Refusal as exc:
                return self.page(request, "refused.html", status=exc.status, message=exc.message)
            except SoulError as exc:
                return self.page(request, "refused.html", status=404 if isinstance(exc, NotFound) else 400,
                                 message=exc.message, hint=exc.hint)
            except Busy as exc:
                return self.page(request, "refused.html", status=exc.status, message=str(exc),
                                 hint=f"try again in {exc.retry_after} s")
        return answer

    async def form(self, request: Request) -> dict[str, str]:
        """The POST's urlencoded fields; Refusal unless it may write (guard.check_write)."""
        fields = _fields(await request.body())
        headers = _headers(request)
        self.guard.check_write(headers, headers.get(b"host", b"").decode("latin-1"), fields.get("csrf"))
        return fields

    async def run(self, fn):
        return await self.served.slot.memory(fn)

    # -- pages --------------------------------------------------------------------------------------
    async def now(self, request: Request):
        now, night = await self.run(lambda: (views.now(self.served), views.night_plan(self.soul)))
        return self.page(request, "now.html", now=now, night=night)

    async def events(self, request: Request):
        async def feed():
            last = None
            while not (await request.is_disconnected() or self.served.stopping()):
                state = json.dumps(await self.run(lambda: views.now(self.served)), default=str)
                if state != last:
                    yield f"data: {state}\n\n"
                    last = state
                await asyncio.sleep(FEED_S)

        return StreamingResponse(feed(), media_type="text/event-stream", headers={"cache-control": "no-store"})

    async def lineage(self, request: Request):
        data = await self.run(lambda: views.lineage(self.soul))
        return self.page(request, "lineage.html", **data, charts=lineage_charts(data))

    async def generation(self, request: Request, gid: str):
        return self.page(request, "generation.html", g=await self.run(lambda: views.generation(self.soul, gid)))

    async def memory(self, request: Request, q: str = "", role: str = "", speaker: str = "", since: str = "",
                     until: str = ""):
        def read():
            data = views.memory(self.soul)
            data["query"] = {"q": q, "role": role, "speaker": speaker, "since": since, "until": until}
            if q.strip():
                data["results"] = views.search(self.soul, q, role or None, speaker or None, since or None,
                                               until or None)
            return data

        return self.page(request, "memory.html", **await self.run(read))

    async def packet(self, request: Request, packet_id: str):
        return self.page(request, "packet.html", p=await self.run(lambda: views.packet(self.soul, packet_id)))

    async def resonance(self, request: Request):
        from soulctl.serve.console.resonance import resonance_map
        from soulctl.serve.console.svg import scatter

        def read():
            made = resonance_map(self.soul)
            recent = [views.packet_view(p) for p in self.soul.store.list(_filters("soul"), limit=12)]
            return made, recent

        made, recent = await self.run(read)
        return self.page(request, "resonance.html", map=made, svg=scatter(made["points"]), recent=recent)

    async def chat(self, request: Request, session: str = ""):
        session = session or self.console.new_session()
        window = await self.served.slot.engine(lambda: views.chat_window(self.served, session))
        return self.page(request, "chat.html", session=session, window=window, last=self.console.last.get(session))

    async def login_page(self, request: Request, wrong: int = 0):
        return self.page(request, "login.html", wrong=bool(wrong))

    async def static(self, name: str):
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"cache-control": "max-age=300"})

    # -- writes -------------------------------------------------------------------------------------
    async def chat_turn(self, request: Request):
        fields = await self.form(request)
        session, text = fields.get("session") or self.console.new_session(), fields.get("text", "").strip()
        if not text:
            raise Refusal(400, "say something first: the message is empty")
        self.console.last[session] = await self.served.slot.engine(lambda: self.console.turn(session, text))
        return RedirectResponse(f"/chat?session={quote(session)}", status_code=303)

    async def mark(self, request: Request):
        from soulctl.evolve.resonate import mark as run_mark

        fields = await self.form(request)
        packet_id, score = fields.get("id", ""), _score(fields.get("score", ""))
        await self.run(lambda: run_mark(self.soul.store, packet_id, score))
        back = fields.get("back", "")
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/resonance",
                                status_code=303)

    async def revert(self, request: Request):
        from soulctl.memory.notebook import KINDS
        from soulctl.memory.notebook import revert as run_revert

        fields = await self.form(request)
        kind = fields.get("kind", "notebook")
        if kind not in KINDS or not fields.get("version", "").isdigit():
            raise Refusal(400, "a revert names a kind (notebook or self) and a version number")
        await self.run(lambda: run_revert(self.soul, kind, int(fields["version"]), "from the console"))
        return RedirectResponse("/memory", status_code=303)

    async def night(self, request: Request):
        from soulctl.evolve.schedule import start_now

        await self.form(request)
        await self.run(lambda: start_now(self.soul.home))
        return RedirectResponse("/", status_code=303)

    async def login(self, request: Request):
        fields = _fields(await request.body())
        headers = _headers(request)
        if headers.get(b"origin", b"").decode("latin-1") != f"http://{headers.get(b'host', b'').decode('latin-1')}":
            raise Refusal(403, "a sign-in from another site is refused")
        sid = self.guard.sign_in(fields.get("token", ""))
        if sid is None:
            return RedirectResponse("/login?wrong=1", status_code=303)
        return RedirectResponse("/", status_code=303, headers={"set-cookie": self.guard.cookie(sid)})

    async def logout(self, request: Request):
        await self.form(request)
        self.guard.sign_out(_headers(request))
        return RedirectResponse("/login", status_code=303, headers={"set-cookie": self.guard.cookie("") + "; Max-Age=0"})


class Console:
    """The console's own conversations: named console-…, each one's last turn kept to show
    what it cited."""

    def __init__(self, served: Served):
        self.served = served
        self.last: dict[str, dict] = {}

    @staticmethod
    def new_session() -> str:
        from soulctl.log.packets import new_session_id

        return "console-" + new_session_id()

    def turn(self, session: str, text: str) -> dict:
        """One Memory OS turn on the engine's worker, logged as every turn is."""
        from soulctl.serve.errors import check_session

        chat = self.served.chat_for(check_session(session, "session"))
        result = chat.turn(text)
        while len(self.last) > 64:
            self.last.pop(next(iter(self.last)))
        return {"reply": result.reply, "reply_id": result.reply_id, "user_id": result.user_id,
                "retrieved": [self._cited(c) for c in result.retrieved], "flushed": result.flushed, "generation": result.generation,
                "speaker": result.speaker, "notebook": result.notebook}


    def _cited(self, cite: str) -> dict:
        """A citation of the turn with what it cites: a packet's role and prose, or a corpus passage."""
        from soulctl.errors import NotFound

        if not cite.startswith("log:"):
            return {"cite": cite}
        try:
            p = self.served.soul.store.get(cite[4:])
        except NotFound:
            return {"cite": cite, "id": cite[4:]}
        return {"cite": cite, "id": p.id, "role": p.role, "prose": p.prose[:200], "session": p.session}


def lineage_charts(data: dict) -> list[str]:
    from soulctl.serve.console.svg import series_chart

    rows = data["generations"]
    labels = [r["id"].replace("gen-", "") for r in rows]

    def href(i: int) -> str:
        return f"/lineage/{rows[i]['id']}"

    return [series_chart(labels, [{"name": "weight drift", "values": [r["drift"] for r in rows]}],
                         data["max_drift"], "max drift", href, title="drift from the anchor"),
            series_chart(labels, [{"name": "probe loss Δ", "values": [r["probe_loss_delta"] for r in rows],
                                   "colour": "#c8553d"},
                                  {"name": "absorption", "values": [r["absorption"] for r in rows],
                                   "colour": "#588b8b"},
                                  {"name": "held-out absorption", "values": [r["held_out_absorption"] for r in rows],
                                   "colour": "#8e6c8a"}],
                         data["max_probe_loss_delta"], "probe bound", href,
                         title="probe loss against the anchor, and what each night absorbed (nats/token)")]


def _templates():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["cites"] = _linked_cites
    env.filters["num"] = lambda v, digits=4: "—" if v is None else f"{v:.{digits}f}"
    env.filters["gib"] = lambda n: "—" if n is None else f"{n / 2**30:.1f} GiB"
    return env


def _linked_cites(text: str):
    """A notebook line with each `[log <id>]` a link to that packet (the rest escaped)."""
    from markupsafe import Markup, escape

    out, at = [], 0
    for found in views.CITE.finditer(text):
        out.append(escape(text[at:found.start()]))
        out.append(Markup('<a class="cite" href="/packet/{0}">[log {0}]</a>').format(found.group(1)))
        at = found.end()
    out.append(escape(text[at:]))
    return Markup("").join(out)


def _fields(body: bytes) -> dict[str, str]:
    """An urlencoded form's fields (the last value of a repeated one)."""
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _headers(request) -> dict[bytes, bytes]:
    return dict(request.scope["headers"])


def _filters(role: str):
    from soulctl.log import Filters

    return Filters(role=role)


def _score(value: str) -> float:
    try:
        score = float(value)
    except ValueError:
        raise Refusal(400, f"a mark's score must be a number from 0 to 1, not {value[:20]!r}") from None
    if not 0.0 <= score <= 1.0:
        raise Refusal(400, f"a mark's score must be from 0 to 1, not {score}")
    return score
