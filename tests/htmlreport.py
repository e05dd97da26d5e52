"""Checks of `report.html`: every number against `summary.json`, and a look in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

VOID = {"meta", "br", "link", "img", "input", "hr", "rect", "path", "line", "circle"}
DIGIT = re.compile(r"\d")


class _Numbers(HTMLParser):
    """Collects the tagged numbers, and any digit outside them and outside free text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.numbers: list[tuple[str, str, str]] = []
        self.stray: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        self.stack.append((tag, dict(attrs)))
        if "data-n" in dict(attrs):
            self._current = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1][0] == tag, f"unbalanced </{tag}> in {self.stack}"
        _, attrs = self.stack.pop()
        if "data-n" in attrs:
            assert self._current is not None
            self.numbers.append(
                (str(attrs["data-n"]), str(attrs["data-style"]), "".join(self._current))
            )
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)
            return
        if any(tag in ("style", "title") or "data-free" in attrs for tag, attrs in self.stack):
            return
        if DIGIT.search(data):
            self.stray.append(data.strip())


def expected_text(value: Any, style: str) -> str:
    """How the page must print `value` (written out here, not imported from the renderer)."""
    if value is None:
        return "none"
    if style == "int":
        return f"{int(value):,}"
    if style == "pct":
        return f"{float(value):.1f}%"
    if style == "s":
        return f"{float(value):,.1f} s"
    if style == "min":
        return f"{float(value):,.1f} min"
    if style == "mb":
        return f"{float(value) / 1e6:,.1f} MB"
    if style == "rate":
        return f"{float(value):,.2f}/s"
    if style == "time":
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    raise AssertionError(f"unknown style {style}")


def lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def check_numbers(job_dir: Path) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Parse the page; assert each number matches `summary.json` and none is untagged."""
    summary = json.loads((job_dir / "summary.json").read_text("utf-8"))
    parser = _Numbers()
    parser.feed((job_dir / "report.html").read_text("utf-8"))
    parser.close()
    assert parser.stack == [], "unclosed elements"
    assert parser.stray == [], f"numbers not taken from summary.json: {parser.stray}"
    assert parser.numbers, "the page shows no number"
    for path, style, text in parser.numbers:
        assert text == expected_text(lookup(summary, path), style), (path, text)
    return summary, parser.numbers


# --- headless Chromium -----------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


def chromium_or_skip() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium is missing (apt-get install -y chromium)")
        pytest.skip("needs Debian's chromium package (apt-get install -y chromium)")
    return found


class BrowserReport:
    """What the browser saw while opening the page."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []


def open_in_chromium(
    page: Path, screenshot: Path, *, width: int = 1200, height: int = 2000
) -> BrowserReport:
    """Open `page` from disk in headless Chromium (DevTools protocol); screenshot it."""
    from websockets.sync.client import connect

    binary = chromium_or_skip()
    seen = BrowserReport()
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            endpoint = _devtools_endpoint(process, profile)
            with connect(endpoint, max_size=None, open_timeout=30) as browser:
                _drive(browser, page, screenshot, seen, width, height)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return seen


def _devtools_endpoint(process: subprocess.Popen[bytes], profile: str) -> str:
    port_file = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"chromium exited with code {process.returncode}")
        if port_file.exists():
            lines = port_file.read_text().split("\n")
            if len(lines) >= 2 and lines[1]:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.1)
    raise AssertionError("chromium did not open its DevTools port in 60 s")


def _drive(
    browser: Any, page: Path, screenshot: Path, seen: BrowserReport, width: int, height: int
) -> None:
    counter = iter(range(1, 1_000_000))
    events: list[dict[str, Any]] = []

    def call(method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        number = next(counter)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        browser.send(json.dumps(message))
        while True:
            answer = json.loads(browser.recv(timeout=60))
            if answer.get("id") == number:
                assert "error" not in answer, answer
                return dict(answer.get("result", {}))
            events.append(answer)

    target = call("Target.createTarget", url="about:blank")["targetId"]
    session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        call(f"{domain}.enable", session)
    call(
        "Emulation.setDeviceMetricsOverride",
        session,
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    events.clear()
    call("Page.navigate", session, url=page.resolve().as_uri())
    deadline = time.monotonic() + 60
    loaded = False
    while not loaded and time.monotonic() < deadline:
        event = json.loads(browser.recv(timeout=60))
        events.append(event)
        loaded = event.get("method") == "Page.loadEventFired"
    assert loaded, "the page did not finish loading"
    shot = call("Page.captureScreenshot", session, format="png", captureBeyondViewport=False)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            seen.errors.append(str(params.get("exceptionDetails")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            seen.errors.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            seen.errors.append(str(params["entry"].get("text")))
        elif method == "Network.requestWillBeSent":
            seen.requests.append(str(params.get("request", {}).get("url")))
