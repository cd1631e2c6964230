"""The HTML report in a real browser: headless Chromium (Debian package, installed by `make test`) opens it over the
DevTools protocol; the page logs no console errors or failed loads, and the screenshot shows drawn charts. A page
with a broken image and a console error is opened too, to show the check catches them."""

import asyncio
import base64
import io
import shutil
import subprocess
import time

import aiohttp
import pytest

from infercost.loadgen.stub_server import free_port

from test_report import report  # noqa: F401  (the same small study and its report)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs the Debian "
                                "package where it can)")


async def _open(url: str, port: int) -> tuple[list[str], bytes, dict]:
    errors: list[str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as resp:
                    target = await resp.json()
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 10_000))

            async def call(method, **params):
                i = next(ids)
                await ws.send_json({"id": i, "method": method, "params": params})
                while True:
                    msg = await ws.receive_json(timeout=60)
                    if msg.get("id") == i:
                        return msg.get("result", {})
                    _event(msg)

            def _event(msg):
                m, p = msg.get("method"), msg.get("params", {})
                if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append("console: " + " ".join(str(a.get("value")) for a in p.get("args", [])))
                elif m == "Runtime.exceptionThrown":
                    errors.append("exception: " + p["exceptionDetails"].get("text", ""))
                elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                    errors.append("log: " + p["entry"].get("text", ""))
                elif m == "Network.loadingFailed":
                    errors.append("load failed: " + p.get("errorText", ""))

            for domain in ("Runtime", "Log", "Network", "Page"):
                await call(f"{domain}.enable")
            await call("Emulation.setDeviceMetricsOverride", width=1200, height=900, deviceScaleFactor=1, mobile=False)
            await call("Page.navigate", url=url)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # wait for the load event, collecting events meanwhile
                msg = await ws.receive_json(timeout=30)
                _event(msg)
                if msg.get("method") == "Page.loadEventFired":
                    break
            await asyncio.sleep(0.5)
            metrics = await call("Runtime.evaluate", expression="JSON.stringify({svgs: document.querySelectorAll("
                                 "'figure svg').length, h2: [...document.querySelectorAll('h2')].map(h => h.id), "
                                 "height: document.body.scrollHeight})", returnByValue=True)
            shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                              clip={"x": 0, "y": 0, "width": 1200, "height": 2400, "scale": 1})
            import json

            return errors, base64.b64decode(shot["data"]), json.loads(metrics["result"]["value"])


def _browse(url: str):
    port = free_port()
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--remote-debugging-port={port}", "--remote-allow-origins=*", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return asyncio.run(_open(url, port))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _drawn_share(png: bytes) -> float:
    """Share of pixels that are not (near) white."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("L")
    hist = img.histogram()
    return 1 - sum(hist[245:]) / sum(hist)


def test_the_check_catches_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="missing.png"><script>console.error("boom")</script></body></html>')
    errors, png, _ = _browse(bad.as_uri())
    assert any("boom" in e for e in errors) and any("load failed" in e or "missing" in e for e in errors), errors
    assert _drawn_share(png) < 0.02


def test_report_opens_without_errors_and_draws_its_charts(report):
    out, data, _ = report
    errors, png, metrics = _browse((out / "report.html").as_uri())
    assert errors == []
    assert metrics["svgs"] == len(data["charts"]) >= 3
    sections = ["recommendation", *(["build-or-buy"] if data.get("build_or_buy") else []),
                *(["quality-unchecked"] if data.get("quality_unverified") else []), "alternatives", "placements",
                "sensitivity", "finops", "evidence"]
    assert metrics["h2"] == sections
    (out / "screenshot.png").write_bytes(png)
    assert _drawn_share(png) > 0.05  # text, tables and charts: not a blank page
