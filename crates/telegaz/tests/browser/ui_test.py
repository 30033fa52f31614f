"""Drive the Telegaz web UI in headless Chromium (Debian's `chromium`) with
Playwright: sign in, the fleet lists the units, a device chart draws with
data points, the configuration sheet prints, the raw viewer shows
Windows-1251 text, the profile preview works, hostile names stay text.

Run by crates/telegaz/tests/browser.rs against a real `telegaz serve` with
real data. Arguments: one JSON object (see browser.rs). Screenshots and the
printed sheet go to its "out" directory. Any failure exits non-zero with a
message.
"""

import json
import os
import sys

from playwright.sync_api import sync_playwright

args = json.loads(sys.argv[1])
base = args["base"]
out = args["out"]
os.makedirs(out, exist_ok=True)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    else:
        print("ok:", what, flush=True)


def shot(page, name):
    page.screenshot(path=os.path.join(out, name + ".png"), full_page=True)


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=args.get("chromium", "/usr/bin/chromium"),
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
    page = context.new_page()
    console_errors = []
    dialogs = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))

    def on_dialog(d):
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)

    # Sign in.
    page.goto(base + "/")
    check("/login" in page.url, "anonymous visitor lands on the sign-in page")
    page.fill("input[name=user]", args["user"])
    page.fill("input[name=password]", args["password"])
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state()
    check(page.url.rstrip("/") == base, "signed in and back on the fleet page: " + page.url)
    shot(page, "01-fleet")

    # The fleet lists every unit.
    units = page.locator("#fleet tr.unit")
    check(units.count() == args["units"], f"fleet lists {args['units']} units (found {units.count()})")
    check(page.locator("#fleet-total").inner_text() == str(args["units"]), "fleet total")
    page.fill("input[name=q]", args["device"])
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    check(page.locator("#fleet tr.unit").count() >= 1, "search finds the device")

    # A device chart draws with data points.
    page.goto(base + f"/devices/{args['device']}?from={args['from']}&to={args['to']}")
    charts = page.locator("svg.chart")
    check(charts.count() >= 3, f"device page has its charts (found {charts.count()})")
    points = page.locator("svg.chart .pt")
    n = points.count()
    check(n >= args["min_points"], f"charts draw data points (found {n})")
    if n:
        box = points.first.bounding_box()
        check(box is not None and box["width"] > 0 and box["height"] > 0, "a data point is drawn with a size")
    shot(page, "02-device")

    # The configuration sheet prints: the frame is hidden in print, the sheet is not.
    page.goto(base + f"/devices/{args['device']}/sheet")
    check(page.locator("#sheet-login").inner_text().strip() == args["device"], "sheet shows the login")
    page.emulate_media(media="print")
    check(not page.locator("header.top").is_visible(), "navigation is hidden in print")
    check(page.locator("#sheet").is_visible(), "the sheet is printed")
    pdf = os.path.join(out, "03-sheet.pdf")
    page.pdf(path=pdf, format="A4")
    with open(pdf, "rb") as f:
        head = f.read(5)
    check(head == b"%PDF-" and os.path.getsize(pdf) > 2000, "the sheet prints to PDF")
    page.emulate_media(media="screen")
    shot(page, "03-sheet")

    # The raw viewer shows Windows-1251 text correctly.
    page.goto(base + f"/uploads/{args['cp1251_upload']}")
    raw = page.locator("#raw").inner_text()
    check("Дата;Время;Vст, м3;Vраб, м3;P, кПа;T, °C" in raw, "raw viewer decodes Windows-1251")
    shot(page, "04-raw-1251")
    page.select_option("select[name=enc]", "utf-8")
    page.click("button[name=view][value=hex]")
    page.wait_for_load_state()
    check("00000000" in page.locator("#raw").inner_text(), "hex view")

    # A file full of control bytes and markup stays text.
    page.goto(base + f"/uploads/{args['hostile_upload']}")
    check("<script>alert(3)</script>" in page.locator("#raw").inner_text(), "markup in a file is shown as text")
    check(page.locator("#raw .ctl").count() >= 20, "control bytes are shown as markers")
    shot(page, "05-hostile")
    page.goto(base + "/registry")
    check("<script>alert(1)</script>" in page.locator("#registry").inner_text(), "a hostile title is shown as text")

    # The profile preview works on the quarantined upload.
    page.goto(base + "/profiles/edit?name=vendor-csv-cp1251")
    text = page.locator("textarea[name=text]").input_value()
    text = text.replace('encoding = "windows-1251"', 'encoding = "utf-8"').replace('delimiter = ";"', 'delimiter = "\\t"')
    page.fill("input[name=name]", "tabs")
    page.fill("textarea[name=text]", text)
    page.select_option("select[name=upload]", str(args["quarantined_upload"]))
    page.click("#preview")
    page.wait_for_load_state()
    total = page.locator("#preview-total")
    check(total.count() == 1 and total.inner_text() == "24", "profile preview reads 24 rows")
    check(page.locator("#preview-rows tbody tr").count() == 24, "preview rows are listed")
    shot(page, "06-profile-preview")

    # English on request.
    page.goto(base + "/")
    page.click("a.lang")
    page.wait_for_load_state()
    check("Fleet" in page.locator("h1").inner_text(), "switch to English")

    check(not dialogs, f"no script ran from data (dialogs: {dialogs})")
    check(not console_errors, f"no console errors or CSP violations: {console_errors}")
    browser.close()

if failures:
    print(f"{len(failures)} browser checks failed", file=sys.stderr)
    sys.exit(1)
print("all browser checks passed")
