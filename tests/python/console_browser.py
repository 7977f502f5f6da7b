"""Drives headless Chromium (Debian's `chromium`, through Playwright's Python client) against the
console of a running consumer service, with each step's client certificate, and prints what the
pages showed as JSON, for tests/tests/console.rs to assert on.

usage: console_browser.py SPEC.json

SPEC: {"base": "https://127.0.0.1:PORT", "pki": DIR, "steps": [STEP, …]}; a STEP is
  {"as": IDENTITY, "goto": PATH, "fill": {CSS: TEXT} (optional: form fields to fill),
   "click": CSS (optional: a button whose form navigates), "screenshot": PNG (optional)}.
Each step prints {"status", "url", "frame_options" (the X-Frame-Options answered), "viewer", "notice", "error", "cards": {id: value},
"sections": {id: [{"key", "cells": [...]}]}, "frames": [src]} in order.

The browser presents `<pki>/<identity>.pem` / `.key` to the server: Playwright's
`client_certificates` (it makes the TLS connection itself, so the CA is given to it by
NODE_EXTRA_CA_CERTS; the server's certificate is checked). No prompt, no NSS database, nothing in
/etc. Root needs --no-sandbox.
"""
import json
import os
import shutil
import sys

spec = json.load(open(sys.argv[1], encoding="utf-8"))
base, pki = spec["base"], os.path.abspath(spec["pki"])
# Read by Playwright's driver when it starts: the CA the server's certificate chains to.
os.environ["NODE_EXTRA_CA_CERTS"] = os.path.join(pki, "ca.pem")

from playwright.sync_api import sync_playwright  # noqa: E402  (after the environment is set)

CHROMIUM = os.environ.get("CHROMIUM") or next(
    (p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
     if p and os.path.exists(p)),
    None,
)
if CHROMIUM is None:
    sys.exit("no Chromium: deploy/test.sh installs Debian's chromium package")

EXTRACT = """() => {
  const text = (el) => el ? el.textContent.trim() : null;
  const cards = {};
  document.querySelectorAll('.card').forEach(c => { cards[c.id] = text(c.querySelector('b')); });
  const sections = {};
  document.querySelectorAll('section').forEach(s => {
    sections[s.id] = [...s.querySelectorAll('tbody tr')].map(r => ({
      key: r.dataset.key || '',
      cells: [...r.querySelectorAll('td')].map(td => td.textContent.trim()),
    }));
  });
  return {
    viewer: text(document.querySelector('#viewer')),
    notice: text(document.querySelector('#notice')),
    error: text(document.querySelector('#error')),
    cards, sections,
    frames: [...document.querySelectorAll('iframe')].map(f => f.getAttribute('src')),
  };
}"""

out = []
with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    )
    contexts = {}
    for step in spec["steps"]:
        who = step["as"]
        if who not in contexts:
            contexts[who] = browser.new_context(
                locale="zh-CN",
                client_certificates=[{
                    "origin": base,
                    "certPath": os.path.join(pki, f"{who}.pem"),
                    "keyPath": os.path.join(pki, f"{who}.key"),
                }],
            )
        page = contexts[who].new_page()
        page.set_default_timeout(30000)
        response = page.goto(base + step["goto"])
        for selector, value in step.get("fill", {}).items():
            page.fill(selector, value)
        if "click" in step:
            with page.expect_navigation() as nav:
                page.click(step["click"])
            response = nav.value
        result = {
            "status": response.status if response else None,
            "url": page.url,
            "frame_options": response.headers.get("x-frame-options") if response else None,
        }
        result.update(page.evaluate(EXTRACT))
        if "screenshot" in step:
            page.screenshot(path=step["screenshot"], full_page=step.get("full_page", True))
        out.append(result)
        page.close()
    browser.close()
print(json.dumps(out, ensure_ascii=False))
