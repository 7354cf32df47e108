#!/usr/bin/env python3
"""End-to-end check of `arictl console` in a real headless Chromium, run as an ARI agent.

`tests/daemon/console.rs` starts a dev daemon, provisions an agent whose executable is this
Python interpreter, issues it an L3 and an L2 voucher, starts `arictl console` and runs this
script. The script pays through the agent socket (`clients/python/ari_client.py`) and watches the
console react in the browser; it clicks the console's buttons and checks the daemon's answers;
then it attacks the console: no token, a foreign Origin or Host, other methods, and a page on
another localhost origin that fetches and frames it in the same browser.

Inputs (environment): ARI_CONSOLE_URL (the URL `arictl console` printed, with its token),
ARI_AGENT_SOCKET, ARI_TEST_AGENT, ARI_TEST_L3_VOUCHER and ARI_TEST_L2_VOUCHER (ids; CNY,
payee shop.example), ARI_SCREENSHOTS (a directory for the PNGs).

Every check raises on failure; the script exits 1 with the reason and a failure screenshot.
It needs Debian's chromium, chromium-driver and python3-selenium (Selenium 4.8).
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))

from ari_client import AgentFrozen, AriClient, Denied  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: How long the feed may take to show what the daemon did (the long poll answers at once).
LIVE_S = 5
#: How long the rest of the page may take: the server reuses its figures for up to 2 s, and the
#: page fetches them again after news and after that reuse.
STATE_S = 10
#: The policy the contract fixes, byte for byte.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Headers every response carries (lower-case names).
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
PAYEE = "shop.example"
AUD = "psp.example"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"console_check: {name} is not set (run by tests/daemon/console.rs)")
    return value


CONSOLE_URL = env("ARI_CONSOLE_URL")
AGENT_SOCKET = env("ARI_AGENT_SOCKET")
AGENT = env("ARI_TEST_AGENT")
L3 = env("ARI_TEST_L3_VOUCHER")
L2 = env("ARI_TEST_L2_VOUCHER")
SCREENS = Path(env("ARI_SCREENSHOTS"))

_parsed = urllib.parse.urlsplit(CONSOLE_URL)
HOST = _parsed.hostname or ""
PORT = _parsed.port or 0
TOKEN = urllib.parse.parse_qs(_parsed.query).get("token", [""])[0]
BASE = f"http://{HOST}:{PORT}"
SAME_ORIGIN = BASE
#: The console's pages: the path the token exchange redirects to, and the only path its
#: cookie is sent to (learned in `main`).
PAGE = ""

CHECKS = 0


class CheckFailed(AssertionError):
    pass


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def check(condition: Any, what: str) -> None:
    """Counts and prints a check that held; raises if it did not."""
    global CHECKS
    if not condition:
        raise CheckFailed(what)
    CHECKS += 1
    print(f"   ok  {what}", flush=True)


# --- browser ------------------------------------------------------------------------------------


def start_browser(profile: Path) -> WebDriver:
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # Headless Chromium keeps room for a window's frame inside --window-size: grow the window by
    # that much, so that the page itself (and every screenshot) is 1280x900.
    frame_w, frame_h = driver.execute_script(
        "return [outerWidth - innerWidth, outerHeight - innerHeight];"
    )
    driver.set_window_size(1280 + frame_w, 900 + frame_h)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    return driver


def screenshot(driver: WebDriver, name: str) -> None:
    path = SCREENS / name
    if not driver.save_screenshot(str(path)):
        raise CheckFailed(f"could not save the screenshot {path}")
    print(f"   screenshot {path}", flush=True)


def describe_page(driver: WebDriver) -> str:
    """What the page shows, for a failure message."""
    try:
        return driver.execute_script(
            "const q = (s) => document.querySelector(s);"
            "return 'status line: ' + (q('#status')?.textContent ?? '-') +"
            " '\\nlive: ' + (q('#live')?.textContent ?? '-') +"
            " '\\nfeed: ' + [...document.querySelectorAll('#feed li')].slice(0, 8)"
            ".map((li) => `[${li.dataset.index} ${li.dataset.kind} ${li.dataset.decision ?? ''}]"
            " ${li.textContent}`).join('\\n      ') +"
            " '\\npending: ' + [...document.querySelectorAll('#pending tbody tr')]"
            ".map((tr) => tr.dataset.decision).join(', ');"
        )
    except Exception as e:  # the page itself may be the problem
        return f"(cannot read the page: {e})"


def wait_for(driver: WebDriver, css: str, what: str, timeout: float = LIVE_S) -> Any:
    """The element `css` once present, or a failure that says what the page showed."""
    try:
        element = WebDriverWait(driver, timeout, poll_frequency=0.1).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, css))
        )
    except TimeoutException:
        raise CheckFailed(
            f"{what}: `{css}` not there after {timeout} s\n{describe_page(driver)}"
        ) from None
    check(True, what)
    return element


def wait_until(
    driver: WebDriver, condition: Callable[[WebDriver], Any], what: str, timeout: float = STATE_S
) -> Any:
    """Waits for `condition` (retried on a stale element), or fails saying `what`."""

    def attempt(d: WebDriver) -> Any:
        try:
            return condition(d)
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    try:
        result = WebDriverWait(driver, timeout, poll_frequency=0.1).until(attempt)
    except TimeoutException:
        raise CheckFailed(f"{what}: not so after {timeout} s\n{describe_page(driver)}") from None
    check(True, what)
    return result


def charted(driver: WebDriver, currency: str) -> int:
    """The sum of the chart's bars for `currency`, in minor units (the page's own figures are
    the server's display strings; each bar keeps its amount in data-amount)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(`#chart svg [data-currency='${arguments[0]}']"
        " rect.bar`)].reduce((sum, bar) => sum + Number(bar.dataset.amount), 0);",
        currency,
    )


def text_of(driver: WebDriver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def click(driver: WebDriver, css: str, what: str) -> None:
    """Clicks `css` once it is shown and enabled (again if the page redrew it meanwhile)."""

    def attempt(d: WebDriver) -> bool:
        element = d.find_element(By.CSS_SELECTOR, css)
        if not (element.is_displayed() and element.is_enabled()):
            return False
        element.click()
        return True

    wait_until(driver, attempt, what)


def browser_problems(driver: WebDriver) -> list[str]:
    """The console messages since the last call that show a CSP violation or a script error."""
    problems = []
    for entry in driver.get_log("browser"):
        message = entry.get("message", "")
        if "favicon.ico" in message:
            continue
        if entry.get("level") == "SEVERE" or "Content Security Policy" in message:
            problems.append(message)
    return problems


def network_statuses(driver: WebDriver, prefix: str, origin: str | None = None) -> list:
    """(method, url, status) of each request to a URL starting with `prefix` that the browser
    made since the last call, from the DevTools network events ChromeDriver logs. The status is
    the answer's, or the browser's error text when the page got no answer (a fetch that CORS
    blocked gets none). With `origin`, only requests made by that origin's pages (by their
    document, Referer or Origin; the console's own page sends no Referer)."""
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    requests: dict[str, list] = {}
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            sent = params["request"]
            headers = {name.lower(): value for name, value in sent.get("headers", {}).items()}
            ours = origin is None or any(
                value.startswith(origin)
                for value in (
                    params.get("documentURL", ""),
                    headers.get("referer", ""),
                    headers.get("origin", ""),
                )
            )
            if ours and sent["url"].startswith(prefix):
                requests[params["requestId"]] = [sent["method"], sent["url"], None]
        elif event.get("method") == "Network.responseReceived":
            if params["requestId"] in requests:
                requests[params["requestId"]][2] = int(params["response"]["status"])
        elif event.get("method") == "Network.loadingFailed":
            known = requests.get(params["requestId"])
            if known and known[2] is None:
                known[2] = params.get("errorText") or "failed"
    return [tuple(r) for r in requests.values()]


# --- plain HTTP ---------------------------------------------------------------------------------


def request(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the console with exactly these headers (Host defaults to the right
    one): status, headers (lower-case names), body."""
    sent = {"Host": f"{HOST}:{PORT}"}
    sent.update(headers or {})
    connection = http.client.HTTPConnection(HOST, PORT, timeout=10)
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        received = {name.lower(): value for name, value in response.getheaders()}
        return response.status, received, data
    finally:
        connection.close()


def expect(
    status: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    why: str = "",
) -> tuple[dict[str, str], bytes]:
    """Sends the request, checks its status and that it carries every security header and no
    CORS header."""
    got, received, data = request(method, path, headers, body)
    label = f"{method} {path}{' ' + why if why else ''}"
    if got != status:
        raise CheckFailed(f"{label}: expected {status}, got {got}: {data[:200]!r}")
    for name, value in SECURITY_HEADERS.items():
        if received.get(name) != value:
            raise CheckFailed(f"{label}: header {name} is {received.get(name)!r}, not {value!r}")
    cors = [name for name in received if name.startswith("access-control-")]
    if cors:
        raise CheckFailed(f"{label}: CORS headers sent: {cors}")
    check(True, f"{label} -> {status}, with the security headers and no CORS header")
    return received, data


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def action_body(action: str, **fields: str) -> bytes:
    return json.dumps({"action": action, **fields}).encode()


def agent_status_over_http() -> str:
    _, _, data = request("GET", PAGE + "api/state", bearer())
    state = json.loads(data)
    return next(a["status"] for a in state["agents"] if a["id"] == AGENT)


# --- the page on another origin -----------------------------------------------------------------

ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title>
<script>window.loads = {{}};</script></head>
<body>
<h1>A page on another localhost origin</h1>
<p>It fetches the console with the browser's cookies and frames it.</p>
<iframe id="console-frame" src="{console}{page}" width="600" height="300"
  onload="window.loads[this.id] = true"></iframe>
<iframe id="control-frame" src="/control.html" width="300" height="100"
  onload="window.loads[this.id] = true"></iframe>
<pre id="out"></pre>
<script>
const CONSOLE = {console_js} + {page_js};
const AGENT = {agent_js};
const frameLoaded = async (id) => {{
  for (let i = 0; i < 80 && !window.loads[id]; i++) {{
    await new Promise((resolve) => setTimeout(resolve, 100));
  }}
  return Boolean(window.loads[id]);
}};
async function attempt(make) {{
  try {{
    const response = await make();
    return {{failed: false, type: response.type, status: response.status}};
  }} catch (e) {{
    return {{failed: true, error: String(e)}};
  }}
}}
window.probe = (async () => {{
  const results = {{}};
  results.state = await attempt(() => fetch(CONSOLE + 'api/state', {{credentials: 'include'}}));
  results.action = await attempt(() => fetch(CONSOLE + 'api/action', {{
    method: 'POST', credentials: 'include',
    headers: {{'Content-Type': 'application/json'}},
    body: JSON.stringify({{action: 'unfreeze', agent: AGENT}}),
  }}));
  // A "simple" request goes out without a preflight; only the server can refuse it.
  results.simple = await attempt(() => fetch(CONSOLE + 'api/action', {{
    method: 'POST', mode: 'no-cors', credentials: 'include',
    headers: {{'Content-Type': 'text/plain'}},
    body: JSON.stringify({{action: 'unfreeze', agent: AGENT}}),
  }}));
  results.consoleFrameLoadEvent = await frameLoaded('console-frame');
  results.controlFrameLoadEvent = await frameLoaded('control-frame');
  document.getElementById('out').textContent = JSON.stringify(results, null, 2);
  return results;
}})();
</script>
</body></html>
"""

CONTROL_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>control</title></head>
<body><p id="control-marker">a frame that may load</p></body></html>
"""


class AttackServer:
    """A tiny http.server on another 127.0.0.1 port serving the attack page; it records the
    cookies the browser sends it."""

    def __init__(self, directory: Path) -> None:
        self.cookies: list[str] = []
        cookies = self.cookies

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                cookies.append(self.headers.get("Cookie", ""))
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the steps ----------------------------------------------------------------------------------


def load_console(driver: WebDriver) -> None:
    step("1. the console loads with the printed URL and shows the agent")
    check(HOST == "127.0.0.1" and PORT > 0, f"the console listens on 127.0.0.1 ({BASE})")
    check(len(TOKEN) == 43, "the printed URL carries a 43-character token")
    driver.get(CONSOLE_URL)
    wait_for(driver, f'#agents [data-agent="{AGENT}"]', f"agent {AGENT} is listed", STATE_S)
    check("token" not in driver.current_url, f"the token left the address bar ({driver.current_url})")
    check(
        text_of(driver, f'#agents [data-agent="{AGENT}"] .agent-status') == "active",
        "its status is active",
    )
    for voucher in (L3, L2):
        wait_for(driver, f'#agents [data-agent="{AGENT}"] [data-voucher="{voucher}"]',
                 f"voucher {voucher} is listed under it", STATE_S)
        wait_for(driver, f'[data-voucher="{voucher}"] .budget-bar',
                 f"voucher {voucher} has a budget bar")
    wait_for(driver, "#chart svg", "the spending chart is drawn", STATE_S)
    wait_until(driver, lambda d: text_of(d, "#live") == "live", "the live feed is connected")
    screenshot(driver, "01-loaded.png")


def pay_l3(driver: WebDriver, client: AriClient) -> None:
    step("2. an L3 payment through the agent socket appears in the live feed")
    result = client.authorize(L3, 1250, "CNY", PAYEE, aud=AUD)
    check(result["status"] == "authorized", "the L3 payment of 12.50 CNY is authorized")
    index = result["log_index"]
    item = wait_for(
        driver,
        f'#feed li[data-kind="payment.authorized"][data-index="{index}"]',
        f"the feed shows payment.authorized at log index {index}",
    )
    check("12.50 CNY" in item.text, f"the feed item names the amount ({item.text!r})")
    check(
        driver.find_element(By.CSS_SELECTOR, "#feed li").get_attribute("data-index") == str(index),
        "it is the newest item, at the top",
    )
    wait_until(
        driver,
        lambda d: "12.50 CNY" in text_of(d, f'[data-voucher="{L3}"] .budget-text'),
        "the L3 voucher's budget shows 12.50 CNY spent",
    )
    wait_until(driver, lambda d: charted(d, "CNY") == 1250, "the chart shows the 12.50 CNY")
    # More to look at: another payment, and one the policy refuses.
    result = client.authorize(L3, 3000, "CNY", PAYEE, aud=AUD)
    check(result["status"] == "authorized", "a second L3 payment of 30.00 CNY is authorized")
    try:
        client.authorize(L3, 60000, "CNY", PAYEE, aud=AUD)
    except Denied as e:
        check(e.reason == "amount_out_of_range", "600.00 CNY is over the voucher's maximum")
        wait_for(
            driver,
            f'#feed li[data-kind="payment.denied"][data-decision="{e.decision}"]',
            "the feed shows the denial",
        )
    else:
        raise CheckFailed("a payment over the voucher's maximum was authorized")
    wait_until(driver, lambda d: charted(d, "CNY") == 4250, "the chart shows 42.50 CNY in all")


def pay_l2_and_confirm(driver: WebDriver, client: AriClient) -> None:
    step("3. an L2 payment waits for confirmation; Confirm authorizes it")
    result = client.authorize(L2, 4200, "CNY", PAYEE, aud=AUD)
    check(result["status"] == "pending_confirmation", "the L2 payment is pending_confirmation")
    decision = result["decision"]
    row_css = f'#pending tr[data-decision="{decision}"]'
    row = wait_for(driver, row_css, "it is listed under waiting for confirmation", STATE_S)
    check("42.00 CNY" in row.text, f"the row names the amount ({row.text!r})")
    wait_for(
        driver,
        f'#feed li[data-kind="payment.pending"][data-decision="{decision}"]',
        "the feed shows payment.pending",
    )
    wait_until(
        driver,
        lambda d: "42.00 CNY held" in text_of(d, f'[data-voucher="{L2}"] .budget-text'),
        "the L2 voucher's budget shows 42.00 CNY held",
    )
    screenshot(driver, "console.png")

    click(driver, f"{row_css} button.confirm", "Confirm is clicked")
    wait_until(
        driver,
        lambda d: not d.find_elements(By.CSS_SELECTOR, row_css),
        "the payment left the pending list",
    )
    wait_for(
        driver,
        f'#feed li[data-kind="payment.confirmed"][data-decision="{decision}"]',
        "the feed shows payment.confirmed",
    )
    wait_until(driver, lambda d: text_of(d, "#status") == "Payment confirmed.",
               "the status line says the payment was confirmed")
    status = client.payment_status(decision)
    check(status["status"] == "authorized", "payment.status over the agent socket says authorized")
    wait_until(
        driver,
        lambda d: "held" not in text_of(d, f'[data-voucher="{L2}"] .budget-text')
        and "42.00 CNY" in text_of(d, f'[data-voucher="{L2}"] .budget-text'),
        "the L2 voucher's budget shows 42.00 CNY spent, none held",
    )
    screenshot(driver, "03-confirmed.png")


def freeze(driver: WebDriver, client: AriClient) -> None:
    step("4. Freeze stops the agent: its next payment is denied and the feed says so")
    agent_css = f'#agents [data-agent="{AGENT}"]'
    click(driver, f"{agent_css} button.freeze", "Freeze is clicked")
    wait_until(driver, lambda d: text_of(d, f"{agent_css} .agent-status") == "frozen",
               "the agent's status reads frozen")
    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"{agent_css} button.unfreeze")
               .is_displayed(), "Unfreeze is offered instead")
    wait_for(driver, '#feed li[data-kind="agent.frozen"]', "the feed shows agent.frozen")
    try:
        client.authorize(L3, 500, "CNY", PAYEE, aud=AUD)
    except AgentFrozen as e:
        check(e.decision, f"the L3 payment is refused as agent_frozen (decision {e.decision})")
        item = wait_for(
            driver,
            f'#feed li[data-kind="payment.denied"][data-decision="{e.decision}"]',
            "the feed shows the payment.denied",
        )
        check("agent_frozen" in item.text, f"with its reason ({item.text!r})")
    else:
        raise CheckFailed("a frozen agent's payment was authorized")
    screenshot(driver, "04-frozen.png")
    problems = browser_problems(driver)
    check(not problems, f"the console page logged no CSP violation or script error {problems}")


def http_rules() -> None:
    step("5. the HTTP rules: token, Origin, Host, methods, security headers")
    everything = ["/", "/app.js", PAGE, PAGE + "app.js", PAGE + "app.css", PAGE + "favicon.svg",
                  PAGE + "api/state", PAGE + "api/events"]
    for path in everything:
        expect(403, "GET", path, why="without the token")
    json_post = {"Content-Type": "application/json", "Origin": SAME_ORIGIN}
    expect(403, "POST", PAGE + "api/action", json_post, action_body("unfreeze", agent=AGENT),
           why="without the token")
    expect(403, "GET", "/?token=" + "A" * 43, why="with a wrong token")
    expect(403, "GET", PAGE, {"Cookie": f"ari_console_{PORT}={'A' * 43}"}, why="with a wrong cookie")
    expect(403, "GET", PAGE + "api/state", {"Authorization": "Bearer " + "A" * 43},
           why="with a wrong bearer token")

    received, _ = expect(303, "GET", "/?token=" + TOKEN, why="with the token")
    check(received.get("location") == PAGE and re.fullmatch(r"/s/[A-Za-z0-9_-]{22}/", PAGE),
          f"it redirects to the console's page {PAGE} (the token leaves the address)")
    cookie = received.get("set-cookie", "")
    attributes = [a.strip().lower() for a in cookie.split(";")]
    check(cookie.startswith(f"ari_console_{PORT}={TOKEN}"), "it sets the token as the port's cookie")
    check({"httponly", "samesite=strict", f"path={PAGE.lower()}"} <= set(attributes),
          f"the cookie is HttpOnly, SameSite=Strict, and only for the console's page ({cookie!r})")
    _, page = expect(200, "GET", PAGE, {"Cookie": f"ari_console_{PORT}={TOKEN}"}, why="with the cookie")
    check(TOKEN.encode() not in page, "the page does not carry the token")

    received, _ = expect(303, "GET", "/", bearer(), why="for / with the bearer token")
    check(received.get("location") == PAGE, "/ leads to the console's page")
    expect(404, "GET", "/app.js", bearer(), why="outside the console's page")
    received, data = expect(200, "GET", PAGE + "api/state", bearer(), why="with the bearer token")
    check(AGENT in [a["id"] for a in json.loads(data)["agents"]], "the state lists the agent")
    check(received.get("content-type", "").startswith("application/json"), "the state is JSON")
    received, _ = expect(200, "GET", PAGE + "app.js", bearer(), why="with the bearer token")
    check("javascript" in received.get("content-type", ""), "app.js is served as JavaScript")
    received, _ = expect(200, "GET", PAGE + "app.css", bearer(), why="with the bearer token")
    check(received.get("content-type", "").startswith("text/css"), "app.css is served as CSS")
    expect(200, "GET", PAGE + "api/state", {**bearer(), "Host": f"localhost:{PORT}",
                                      "Origin": f"http://localhost:{PORT}"},
           why="as localhost with its own Origin")
    expect(200, "GET", PAGE + "api/state", {**bearer(), "Sec-Fetch-Site": "same-origin"},
           why="with Sec-Fetch-Site: same-origin")

    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{PORT + 1}"):
        evil = {**bearer(), "Origin": origin}
        for path in everything:
            expect(403, "GET", path, evil, why=f"with the bearer token from Origin {origin}")
        expect(403, "POST", PAGE + "api/action", {**evil, "Content-Type": "application/json"},
               action_body("unfreeze", agent=AGENT), why=f"with the bearer token from {origin}")
    for host in ("evil.example", f"evil.example:{PORT}", f"127.0.0.1:{PORT + 1}", "127.0.0.1"):
        expect(403, "GET", PAGE + "api/state", {**bearer(), "Host": host}, why=f"with Host {host}")
    for site in ("cross-site", "same-site"):
        expect(403, "GET", PAGE + "api/state", {**bearer(), "Sec-Fetch-Site": site},
               why=f"with Sec-Fetch-Site: {site}")

    unfreeze = action_body("unfreeze", agent=AGENT)
    expect(403, "POST", PAGE + "api/action", {**bearer(), "Content-Type": "application/json"},
           unfreeze, why="without an Origin")
    expect(403, "POST", PAGE + "api/action", {**bearer(), "Origin": SAME_ORIGIN,
                                        "Content-Type": "text/plain"},
           unfreeze, why="as text/plain")
    expect(403, "POST", PAGE + "api/action", {**bearer(), "Origin": SAME_ORIGIN,
                                        "Content-Type": "application/x-www-form-urlencoded"},
           b"action=unfreeze&agent=" + AGENT.encode(), why="as a form")
    check(agent_status_over_http() == "frozen", "none of them unfroze the agent")

    status, _, data = request("POST", PAGE + "api/action", {**bearer(), "Origin": SAME_ORIGIN,
                                                      "Content-Type": "application/json"},
                              action_body("confirm", decision="no-such-decision"))
    check(400 <= status < 500 and status != 403,
          f"an allowed action on a missing decision is refused as such ({status})")
    check(isinstance(json.loads(data).get("error"), str), f"with an error message ({data!r})")

    for method in ("OPTIONS", "PUT", "DELETE", "PATCH"):
        expect(405, method, PAGE + "api/action", {**bearer(), "Origin": SAME_ORIGIN},
               why="with the bearer token")
    preflight = {
        **bearer(),
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, received, _ = request("OPTIONS", PAGE + "api/action", preflight)
    check(status in (403, 405), f"a CORS preflight is refused ({status})")
    check(not [n for n in received if n.startswith("access-control-")],
          "and answered with no CORS header")


def other_origin(driver: WebDriver, scratch: Path) -> None:
    step("6. a page on another localhost origin, in the same browser, can neither use nor frame it")
    site = scratch / "site"
    site.mkdir()
    (site / "attack.html").write_text(
        ATTACK_PAGE.format(console=BASE, page=PAGE, console_js=json.dumps(BASE),
                           page_js=json.dumps(PAGE), agent_js=json.dumps(AGENT))
    )
    (site / "control.html").write_text(CONTROL_PAGE)
    server = AttackServer(site)
    try:
        console_window = driver.current_window_handle
        network_statuses(driver, BASE)  # forget what the console tab did so far
        driver.get_log("browser")
        driver.switch_to.new_window("tab")
        driver.get(f"http://127.0.0.1:{server.port}/attack.html")
        results = driver.execute_async_script(
            "const done = arguments[arguments.length - 1]; window.probe.then(done);"
        )
        print(f"   the page's results: {json.dumps(results)}", flush=True)
        check(results["state"]["failed"], "its fetch of /api/state with credentials failed")
        check(results["action"]["failed"], "its JSON POST to /api/action failed")
        check(
            results["simple"].get("type") == "opaque" or results["simple"]["failed"],
            "its no-cors text/plain POST got nothing readable back",
        )
        check(results["controlFrameLoadEvent"], "a frame of its own origin loads (the control)")
        screenshot(driver, "06-other-origin.png")

        driver.switch_to.frame(driver.find_element(By.ID, "control-frame"))
        check(driver.find_elements(By.ID, "control-marker"),
              "WebDriver sees inside the control frame")
        driver.switch_to.default_content()
        driver.switch_to.frame(driver.find_element(By.ID, "console-frame"))
        inside = driver.execute_script(
            "return {href: location.href, title: document.title,"
            " agents: document.querySelectorAll('#agents').length,"
            " text: document.body ? document.body.innerText.slice(0, 200) : ''};"
        )
        driver.switch_to.default_content()
        print(f"   inside the console's frame: {json.dumps(inside)}", flush=True)
        check(inside["agents"] == 0 and inside["title"] != "ARI console",
              "the console did not render in the frame")
        check(not inside["href"].startswith(BASE),
              f"the frame holds the browser's blocked-frame page ({inside['href']})")

        answers = network_statuses(driver, BASE, origin=f"http://127.0.0.1:{server.port}")
        print("   what the browser got from the console for that page:\n      "
              + "\n      ".join(f"{m} {u} -> {s}" for m, u, s in answers), flush=True)
        check(("GET", BASE + PAGE, 403) in answers, "the frame's request was answered 403")
        check(
            all(isinstance(s, str) or s == 403 or (m == "OPTIONS" and s == 405)
                for m, _, s in answers),
            "every other request of that page failed or was refused (403, 405 to a preflight)",
        )
        messages = [entry.get("message", "") for entry in driver.get_log("browser")]
        print("   the browser's console said:\n      " + "\n      ".join(messages), flush=True)
        check(
            any("frame-ancestors" in m and BASE in m for m in messages),
            "the browser refused to display the console in the frame",
        )

        check(agent_status_over_http() == "frozen", "the agent is still frozen")
        driver.close()
        driver.switch_to.window(console_window)
        driver.get_log("browser")  # the other page's complaints are not the console's
        leaked = [c for c in server.cookies if f"ari_console_{PORT}=" in c]
        # A cookie's host takes no port: only its path keeps it from other local servers.
        check(not leaked, f"the console's cookie never reached the page on port {server.port}")
    finally:
        server.close()


def unfreeze_and_revoke(driver: WebDriver, client: AriClient) -> None:
    step("7. Unfreeze lets the agent pay again; Revoke ends the L3 voucher")
    agent_css = f'#agents [data-agent="{AGENT}"]'
    click(driver, f"{agent_css} button.unfreeze", "Unfreeze is clicked")
    wait_until(driver, lambda d: text_of(d, f"{agent_css} .agent-status") == "active",
               "the agent's status reads active")
    wait_for(driver, '#feed li[data-kind="agent.unfrozen"]', "the feed shows agent.unfrozen")
    result = client.authorize(L3, 700, "CNY", PAYEE, aud=AUD)
    check(result["status"] == "authorized", "the agent's next L3 payment is authorized")
    wait_for(driver, f'#feed li[data-kind="payment.authorized"][data-index="{result["log_index"]}"]',
             "and shown in the feed")

    click(driver, f'[data-voucher="{L3}"] button.revoke', "Revoke is clicked")
    alert = WebDriverWait(driver, STATE_S).until(EC.alert_is_present())
    check(L3 in alert.text, f"the page asks to confirm the revocation ({alert.text!r})")
    alert.accept()
    wait_until(driver, lambda d: text_of(d, f'[data-voucher="{L3}"] .voucher-state') == "revoked",
               "the voucher's state reads revoked")
    wait_for(driver, '#feed li[data-kind="voucher.revoked"]', "the feed shows voucher.revoked")
    check(not driver.find_element(By.CSS_SELECTOR, f'[data-voucher="{L3}"] button.revoke')
          .is_enabled(), "its Revoke button is disabled")
    try:
        client.authorize(L3, 700, "CNY", PAYEE, aud=AUD)
    except Denied as e:
        check(e.reason == "voucher_revoked", "a payment on it is denied as voucher_revoked")
    else:
        raise CheckFailed("a payment on a revoked voucher was authorized")
    screenshot(driver, "07-revoked.png")
    problems = browser_problems(driver)
    check(not problems, f"the console page logged no CSP violation or script error {problems}")


def fresh_profile(scratch: Path) -> None:
    step("8. a browser without the token sees nothing of the console")
    profile = scratch / "fresh-profile"
    profile.mkdir()
    driver = start_browser(profile)
    try:
        driver.get(BASE + PAGE)
        check(not driver.find_elements(By.CSS_SELECTOR, "#agents"), "the page shows no console")
        check(AGENT not in driver.page_source, "and nothing of the agent")
        answers = network_statuses(driver, BASE)
        check(answers and all(status == 403 for _, _, status in answers),
              f"the console answered 403 ({answers})")
        screenshot(driver, "08-no-token.png")
    finally:
        driver.quit()


def learn_page() -> str:
    """The console's page path: where the printed URL's token exchange redirects to."""
    status, received, _ = request("GET", "/?token=" + TOKEN)
    check(status == 303 and "location" in received, f"the printed URL redirects ({status})")
    return received["location"]


def main() -> int:
    global PAGE
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            print(f"console_check: {tool} is missing (apt install chromium chromium-driver)")
            return 1
    SCREENS.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ari-console-check-"))
    driver = None
    try:
        PAGE = learn_page()
        profile = scratch / "profile"
        profile.mkdir()
        driver = start_browser(profile)
        with AriClient(AGENT_SOCKET, timeout=30) as client:
            identity = client.identity()
            check(identity["agent"] == AGENT, f"this process is agent {AGENT} to the daemon")
            load_console(driver)
            pay_l3(driver, client)
            pay_l2_and_confirm(driver, client)
            freeze(driver, client)
            http_rules()
            other_origin(driver, scratch)
            unfreeze_and_revoke(driver, client)
        fresh_profile(scratch)
    except Exception as e:
        print(f"\nFAILED: {e}", flush=True)
        traceback.print_exc()
        if driver is not None:
            try:
                print(describe_page(driver), flush=True)
                screenshot(driver, "failure.png")
            except Exception as shot:
                print(f"(no failure screenshot: {shot})")
        return 1
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nconsole_check: all {CHECKS} checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
