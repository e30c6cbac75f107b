"""The console (issue 41): a real `soulctl serve` with a token, driven by headless Chromium
(Debian's package) through Playwright — every page without console errors, a chat turn cited,
a mark that moves the resonance map, a notebook revert, the Now page following `gen use` live —
and every refusal a browser or another site could meet, over raw HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import REPO, copy_home, soulctl

from tests.func.served import Served, http

TOKEN = "console-token-0123456789abcdef"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SOULCTL_ARTIFACTS", REPO / "tests" / "artifacts")) / "console"
PAGES = {"now": "/", "lineage": "/lineage", "memory": "/memory?q=Lisbon+bees", "resonance": "/resonance",
         "chat": "/chat"}


def second_generation(home: Path) -> None:
    """gen-0001 from a small random LoRA on the embedded model (a real merge), then `current`
    put back on gen-0000, so the test can move it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from soulctl.generations.adapters import store_adapter
    from soulctl.home import Home

    base = AutoModelForCausalLM.from_pretrained(home / "generations" / "gen-0000", torch_dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.002)
    staged = home / "data" / "staged-console"
    model.save_pretrained(staged)
    adapter = store_adapter(Home(home), staged, {"base_generation": "gen-0000", "buffer_sha256": "console"})
    made = soulctl("merge", adapter, "--home", home, timeout=600)
    assert made.code == 0, made
    assert soulctl("gen", "use", "gen-0000", "--home", home).code == 0


@pytest.fixture(scope="module")
def console_home(gen0_home, tmp_path_factory) -> Path:
    home = copy_home(gen0_home, tmp_path_factory.mktemp("console") / "home")
    lines = [{"prose": "My sister Ada lives in Lisbon and keeps bees on her roof.", "role": "user", "session": "day"},
             {"prose": "Bees on a Lisbon roof: Ada must have the best honey in the city.", "role": "soul",
              "session": "day"}]
    demo = (REPO / "scripts" / "demo-conversation.jsonl").read_text()
    added = soulctl("log", "add", "--jsonl", "--home", home, input=demo + "".join(json.dumps(l) + "\n" for l in lines))
    assert added.code == 0, added
    for text in ("- Ada (the user's sister) lives in Lisbon.", "- Ada lives in Lisbon and keeps bees."):
        assert soulctl("notebook", "set", "--home", home, input=text + "\n").code == 0
    second_generation(home)
    token = home.parent / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    return home


@pytest.fixture(scope="module")
def server(console_home, tmp_path_factory):
    served = Served(console_home, "--token-file", str(console_home.parent / "token"),
                    log=tmp_path_factory.mktemp("console-log") / "serve.log")
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/install --dev installs it where apt runs)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A signed-in page: the token typed once into the sign-in form; console errors collected."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    tab.goto(server.url + "/")
    assert tab.url.endswith("/login")
    tab.fill("input[name=token]", TOKEN)
    tab.click("form[action='/login'] button")
    tab.wait_for_url(server.url + "/")
    yield tab
    context.close()


def shot(tab, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_every_page_loads_without_console_errors(page, server):
    cookie = next(c for c in page.context.cookies() if c["name"] == "soul_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    for name, path in PAGES.items():
        response = page.goto(server.url + path)
        assert response.status == 200, (path, response.status)
        assert page.locator("main h1").count() == 1
        shot(page, name)
    page.goto(server.url + "/lineage")
    assert page.locator("svg.chart").count() == 2 and page.locator("text=gen-0001").count() >= 1
    page.goto(server.url + "/memory?q=Lisbon+bees")
    assert "Ada must have the best honey" in page.locator("ol.hits").inner_text()
    assert page.errors == []


def test_a_chat_turn_shows_what_it_cited(page, server, console_home):
    page.goto(server.url + "/chat")
    page.fill("textarea[name=text]", "Where does my sister Ada live, and what does she keep?")
    page.click("form.say button", no_wait_after=True)
    page.wait_for_selector("aside.cited", timeout=300_000)
    shot(page, "chat-turn")
    session = re.search(r"session=([^&]+)", page.url).group(1)
    logged = soulctl("log", "ls", "--session", session, "--json", "--home", console_home).json_lines()
    assert [p["role"] for p in sorted(logged, key=lambda p: p["seq"])] == ["user", "soul"]
    ada = next(p for p in soulctl("log", "ls", "--session", "day", "--json", "--home", console_home).json_lines()
               if p["role"] == "user")
    cited = [a.get_attribute("href") for a in page.locator("aside.cited a.cite").all()]
    assert f"/packet/{ada['id']}" in cited, cited
    assert "My sister Ada lives in Lisbon" in page.locator("aside.cited").inner_text()
    assert page.locator(".turns .turn").count() == 2
    assert page.errors == []


def test_a_mark_moves_the_resonance_map(page, server, console_home):
    page.goto(server.url + "/resonance")
    row = page.locator("table tbody tr").first
    reply_id = row.locator("input[name=id]").get_attribute("value")
    before = page.locator(f"circle#p-{reply_id}").get_attribute("data-resonance")
    row.locator("input[name=score]").fill("0.95")
    row.locator("button").click()
    page.wait_for_url(server.url + "/resonance")
    assert page.locator(f"circle#p-{reply_id}").get_attribute("data-resonance") == "0.950" != before
    packet = soulctl("log", "show", reply_id, "--json", "--home", console_home).json()
    assert packet["resonance"] == pytest.approx(0.95) and packet["resonance_source"] == "mark"
    shot(page, "resonance-marked")
    assert page.errors == []


def test_a_notebook_revert_is_a_new_version(page, server, console_home):
    before = notebook_versions(console_home)
    page.goto(server.url + "/memory")
    page.click("form[action='/notebook/revert']:has(input[name=version][value='1']) button")
    page.wait_for_url(server.url + "/memory")
    assert "Ada (the user's sister) lives in Lisbon." in page.locator("main section").nth(1).inner_text()
    history = soulctl("notebook", "history", "--json", "--home", console_home).json_lines()
    newest = max(history, key=lambda v: v["version"])
    assert newest["author"] == "user" and newest["reason"].startswith("reverted to v1")
    assert len(history) == before + 1  # nothing deleted
    assert page.errors == []


def test_the_now_page_follows_gen_use_without_reload(page, server, console_home):
    page.goto(server.url + "/")
    assert page.locator("[data-now=served]").inner_text() == "gen-0000"
    page.evaluate("window.notReloaded = true")
    assert soulctl("gen", "use", "gen-0001", "--home", console_home).code == 0
    page.wait_for_function("document.querySelector('[data-now=current]').textContent === 'gen-0001'",
                           timeout=30_000)
    page.wait_for_function("document.querySelector('[data-now=served]').textContent === 'gen-0001'",
                           timeout=300_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("header .gen").inner_text() == "gen-0001"
    shot(page, "now-followed")
    assert page.errors == []


# -- refusals, over raw HTTP ------------------------------------------------------------------------

def signed_in(server) -> tuple[str, str]:
    """A session cookie and its CSRF token, as a browser gets them."""
    origin = f"http://127.0.0.1:{server.port}"
    status, headers, _ = http(server.port, "POST", "/login", urlencode({"token": TOKEN}).encode(),
                              {"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["location"] == "/" and TOKEN not in headers["location"]
    cookie = headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
    page = http(server.port, "GET", "/memory", headers={"Cookie": cookie})[2].decode()
    return cookie, re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


def notebook_versions(home: Path) -> int:
    return len(soulctl("notebook", "history", "--json", "--home", home).json_lines())


def test_without_the_token_nothing_of_the_soul_shows(server, console_home):
    for path in ("/", "/lineage", "/memory?q=Ada", "/resonance", "/chat", "/events", "/packet/x", "/lineage/gen-0000"):
        status, headers, body = http(server.port, "GET", path)
        assert status == 303 and headers["location"] == "/login", (path, status)
        assert b"Ada" not in body and b"gen-0" not in body
    status, _, body = http(server.port, "GET", "/login")
    assert status == 200 and b"gen-0" not in body and b"Ada" not in body and b'method="post"' in body
    wrong = http(server.port, "POST", "/login", b"token=not-the-token-at-all",
                 {"Origin": f"http://127.0.0.1:{server.port}"})
    assert wrong[0] == 303 and wrong[1]["location"] == "/login?wrong=1" and "set-cookie" not in wrong[1]
    before = notebook_versions(console_home)
    status, _, _ = http(server.port, "POST", "/notebook/revert", b"kind=notebook&version=0")
    assert status == 401 and notebook_versions(console_home) == before
    assert http(server.port, "GET", "/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200  # a script


def test_another_site_cannot_act_through_the_console(server, console_home):
    cookie, csrf = signed_in(server)
    before = notebook_versions(console_home)
    form = urlencode({"kind": "notebook", "version": "0", "csrf": csrf}).encode()
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null", None):
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        if origin:
            headers["Origin"] = origin
        status, _, body = http(server.port, "POST", "/notebook/revert", form, headers)
        assert status == 403 and b"refused" in body, (origin, status)
    own = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{server.port}"}
    for fields in ({"kind": "notebook", "version": "0"}, {"kind": "notebook", "version": "0", "csrf": "0" * 64}):
        status, _, body = http(server.port, "POST", "/notebook/revert", urlencode(fields).encode(), own)
        assert status == 403 and b"CSRF" in body
    assert notebook_versions(console_home) == before
    # DNS rebinding: a page on another name that resolves to 127.0.0.1 sends its own Host
    for host in ("evil.example", f"evil.example:{server.port}", f"127.0.0.1.nip.io:{server.port}"):
        status, _, body = http(server.port, "GET", "/", headers={"Host": host, "Cookie": cookie})
        assert status == 421 and b"Ada" not in body, host
    sign_in = http(server.port, "POST", "/login", urlencode({"token": TOKEN}).encode(), {"Origin": "http://evil.example"})
    assert sign_in[0] == 403 and "set-cookie" not in sign_in[1]
    # a script with the bearer token needs neither Origin nor the form's token
    status, _, _ = http(server.port, "POST", "/notebook/revert", b"kind=notebook&version=1",
                        {"Authorization": f"Bearer {TOKEN}"})
    assert status == 303 and notebook_versions(console_home) == before + 1


def test_signing_out_ends_the_session(server):
    cookie, csrf = signed_in(server)
    origin = f"http://127.0.0.1:{server.port}"
    assert http(server.port, "GET", "/lineage", headers={"Cookie": cookie})[0] == 200
    status, headers, _ = http(server.port, "POST", "/logout", f"csrf={csrf}".encode(),
                              {"Cookie": cookie, "Origin": origin})
    assert status == 303 and "Max-Age=0" in headers["set-cookie"]
    assert http(server.port, "GET", "/lineage", headers={"Cookie": cookie})[0] == 303


def test_a_night_started_from_the_console_is_its_own_process(gen0_home, tmp_path):
    """`start_now` (the console's Start a night now): a detached `soulctl evolve` where no
    schedule is installed, appending to data/evolve.log; refused while a night runs."""
    from soulctl.errors import Unavailable
    from soulctl.evolve.schedule import start_now
    from soulctl.home import Home

    home = copy_home(gen0_home, tmp_path / "home")
    started = start_now(Home(home))
    assert started["started"] == "process" and started["pid"] != os.getpid()
    deadline = time.time() + 300
    while time.time() < deadline and Path(f"/proc/{started['pid']}").exists() and \
            "Z" not in Path(f"/proc/{started['pid']}/stat").read_text().split()[2]:
        time.sleep(0.5)
    log = (home / "data" / "evolve.log").read_text()
    assert "nothing" in log.lower(), log[-2000:]  # an empty log: a quiet night, said in its log
    (home / "data" / "evolve.lock").write_text(str(os.getpid()))
    (home / "data" / "evolve.json").write_text(json.dumps({"pid": os.getpid(), "started": time.time(),
                                                            "stage": "dream"}))
    with pytest.raises(Unavailable, match="already running"):
        start_now(Home(home))
