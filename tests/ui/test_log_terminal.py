"""The job tab's log shows what a terminal would: carriage returns overwrite (progress bars),
ANSI colours and styles are drawn and never shown raw, a very long line is cut with a note (the
full log stays downloadable), and a job's text is never taken for HTML. A real browser
(Debian's Chromium through Playwright) against a real JupyterLab with the local backend."""

from __future__ import annotations

import io
from pathlib import Path

from conftest import open_job, shot

BAR = """import sys, time
for i in range(101):
    print(f"\\r{i}%", end="", file=sys.stderr, flush=True)
    time.sleep(0.003)
print(file=sys.stderr)
try:
    from tqdm import tqdm
except ImportError:  # tqdm's look, by hand
    tqdm = None
for epoch in range(1, 4):
    if tqdm:
        for _ in tqdm(range(40), desc=f"epoch {epoch}", ncols=90, file=sys.stdout):
            time.sleep(0.005)
    else:
        for i in range(41):
            bar = "#" * (i // 4)
            print(f"\\repoch {epoch}: {i * 100 // 40:3d}%|{bar:<10}| {i}/40", end="", flush=True)
            time.sleep(0.005)
        print()
    print(f"epoch {epoch}: loss {1 / (epoch + 1):.3f}", flush=True)
print("saved model.pt")
"""

COLOURS = r"""import sys, time
w = sys.stdout.write
w("\x1b[31mred\x1b[0m plain \x1b[1;32mbold green\x1b[0m\n")
w("\x1b[38;5;208morange\x1b[0m \x1b[38;2;10;20;30mtruecolor\x1b[0m \x1b[3mitalic\x1b[23m \x1b[4munderline\x1b[24m\n")
w("\x1b]0;a window title\x07\x1b[?25lno title, no cursor codes\x1b[?25h\x1b[K\x1b]8;;http://x.example\x1b\\\n")
w("\x1b[44mblue background\ncarried over lines\x1b[0m\n")
sys.stdout.flush()
w("split \x1b[3"); sys.stdout.flush(); time.sleep(0.4)  # an escape code cut between two writes
w("5mmagenta\x1b[0m\n")
for level, colour, text in [("INFO", 32, "loading data/train.csv (12,000 rows)"),
                            ("WARNING", 33, "column 'age' has 41 missing values"),
                            ("ERROR", 31, "could not reach the metrics server, retrying")]:
    w(f"2026-12-07 03:40:0{len(level)} \x1b[1;{colour}m{level:<7}\x1b[0m \x1b[2mtrain.py:42\x1b[22m {text}\n")
w("\x1b[7m reverse \x1b[27m \x1b[9mstruck\x1b[29m \x1b[1;97;41m FAILED \x1b[0m \x1b[1;30;42m PASSED \x1b[0m\n")
w("\x1b[32m" + "=" * 20 + " 3 passed, 1 failed in 0.42s " + "=" * 20 + "\x1b[0m\n")
"""

LONG = "import sys\nsys.stdout.write('abcdefghij' * 524288 + '\\n')\nprint('after')\n"

HOSTILE = r"""print('<img src=x onerror="window.__pwned = 1"><b>not bold</b>')
print('\x1b[31m<img src=x onerror="window.__pwned = 2">\x1b[0m <script>window.__pwned = 3</script>')
print('\x1b]8;;javascript:window.__pwned=4\x1b\\a link\x1b]8;;\x1b\\ &lt;escaped&gt; &amp;')
"""


def run(lab, name, script):
    (lab.root / "proj" / f"{name}.py").write_text(script)
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": ["python", f"{name}.py"], "workspace": "proj",
                                                      "name": name})
    return job


def lines(page):
    return page.locator(".jp-JobsView:visible .jp-JobsLog-line").all_text_contents()


def no_raw_escapes(page):
    texts = page.eval_on_selector_all(".jp-JobsLog", "ls => ls.map(l => l.textContent)")
    joined = "".join(texts)
    assert "\x1b" not in joined and "[31m" not in joined and "[0m" not in joined and "]0;" not in joined, joined


def styles(page, text):
    """The computed style of the span that shows `text`."""
    return page.evaluate("""text => {
        const span = [...document.querySelectorAll('.jp-JobsView .jp-JobsLog-line span')]
            .find(s => s.textContent === text);
        if (!span) return null;
        const c = getComputedStyle(span);
        return {cls: span.className, color: c.color, background: c.backgroundColor, weight: c.fontWeight,
                fontStyle: c.fontStyle, decoration: c.textDecorationLine, opacity: c.opacity};
    }""", text)


def ink(png: bytes) -> float:
    """The share of a screenshot's pixels that differ from its most common colour."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = list(image.getdata())
    background = max(set(pixels), key=pixels.count)
    differ = sum(1 for p in pixels if max(abs(a - b) for a, b in zip(p, background)) > 40)
    return differ / len(pixels)


def test_a_progress_bar_shows_its_last_state_on_one_line(page, lab):
    job = run(lab, "bars", BAR)
    open_job(page, job["id"])
    # while it runs, the bar's line changes in place: never more than one line with a '%'
    page.wait_for_function("[...document.querySelectorAll('.jp-JobsView .jp-JobsLog-line')]"
                           ".some(l => /^[0-9]{1,3}%$/.test(l.textContent))")
    page.wait_for_selector(".jp-JobsView[data-status='succeeded']", timeout=60_000)
    page.wait_for_selector(".jp-JobsView .jp-JobsLog-line:has-text('saved model.pt')")
    shown = lines(page)
    assert shown[0] == "100%", shown[:3]
    assert sum("%" in line for line in shown) == 4, shown  # one line a bar
    for epoch in range(1, 4):
        bar = next(line for line in shown if line.startswith(f"epoch {epoch}") and "%" in line)
        assert "100%" in bar and "40/40" in bar and "\r" not in bar and " 0%" not in bar, bar
    assert shown[-1] == "saved model.pt" and len(shown) == 8, shown
    page.wait_for_selector(".jp-JobsLogCount:has-text('8 lines')")
    no_raw_escapes(page)
    # searching finds the bar's last state only, not the states it overwrote
    page.fill(".jp-JobsView [aria-label='search the log']", "50%")
    page.wait_for_selector(".jp-JobsLogSearch .jp-JobsMuted:has-text('no match')")
    page.fill(".jp-JobsView [aria-label='search the log']", "")
    page.locator(".jp-JobsView [aria-label='search the log']").blur()
    shot(page, "log-progress")


def test_ansi_colours_and_styles_are_drawn_and_never_shown_raw(page, lab):
    job = run(lab, "colours", COLOURS)
    lab.wait(job["id"])
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsView .jp-JobsLog-line:has-text('3 passed')")
    shown = lines(page)
    assert shown[:6] == ["red plain bold green", "orange truecolor italic underline", "no title, no cursor codes",
                         "blue background", "carried over lines", "split magenta"], shown
    no_raw_escapes(page)
    red = styles(page, "red")
    assert "jp-JobsAnsi-red-fg" in red["cls"] and red["color"] == "rgb(231, 92, 88)", red
    bold = styles(page, "bold green")
    assert bold["color"] == "rgb(0, 162, 80)" and int(bold["weight"]) >= 700, bold
    assert styles(page, "orange")["color"] == "rgb(255, 135, 0)"  # 256 colours: 208
    assert styles(page, "truecolor")["color"] == "rgb(10, 20, 30)"
    assert styles(page, "italic")["fontStyle"] == "italic"
    assert "underline" in styles(page, "underline")["decoration"]
    assert styles(page, "blue background")["background"] == "rgb(32, 143, 251)"
    assert styles(page, "carried over lines")["background"] == "rgb(32, 143, 251)"  # SGR state carries on
    assert styles(page, "magenta")["color"] == "rgb(209, 96, 196)"  # its code came in two writes
    assert styles(page, "plain") is None  # after a reset: no span
    # a search highlights across the colours, and the colours stay
    page.fill(".jp-JobsView [aria-label='search the log']", "d plain b")
    # one line matches; its marks are drawn before the count shows
    page.wait_for_selector(".jp-JobsLogSearch .jp-JobsMuted:has-text('of 1 line')")
    marked = page.eval_on_selector(".jp-JobsView .jp-JobsLog-line mark",
                                   "m => [m.textContent, [...m.querySelectorAll('span')].map(s => s.className)]")
    assert marked[0] == "d plain b" and any("red" in c for c in marked[1]) and any("green" in c for c in marked[1])
    page.fill(".jp-JobsView [aria-label='search the log']", "")
    page.wait_for_selector(".jp-JobsLogCount:has-text('11 lines')")
    page.locator(".jp-JobsView [aria-label='search the log']").blur()
    shot(page, "log-ansi")


def test_a_5_mb_line_is_cut_with_a_note_and_the_pane_is_not_blank(page, lab):
    job = run(lab, "long", LONG)
    lab.wait(job["id"], timeout=60)
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsView .jp-JobsLog-line:has-text('after')")
    first = page.locator(".jp-JobsView .jp-JobsLog-line").first
    note = first.locator(".jp-JobsLog-cut")
    assert note.text_content() == "line cut at 10,000 of 5,242,880 characters: download the full log "
    text = first.evaluate("l => [...l.childNodes].filter(n => !n.classList?.contains('jp-JobsLog-cut'))"
                          ".map(n => n.textContent).join('')")
    assert text.startswith("abcdefghijabcdefghij") and len(text) == 10_000
    assert lines(page)[-1] == "after"
    log = page.locator(".jp-JobsView .jp-JobsLog")
    box = log.bounding_box()
    row = first.bounding_box()
    clip = {"x": box["x"], "y": max(box["y"], row["y"]), "width": box["width"] - 20, "height": 18}
    try:
        assert ink(page.screenshot(clip=clip)) > 0.05  # the line's text is drawn
    except ImportError:
        pass
    page.check(".jp-JobsView .jp-JobsLogWrap input")
    page.wait_for_timeout(300)
    page.eval_on_selector(".jp-JobsView .jp-JobsLog", "e => { e.scrollTop = 0; }")
    page.wait_for_timeout(300)
    wrapped = first.bounding_box()
    assert wrapped["height"] > 18 * 50  # 10,000 characters over several rows
    assert first.locator(".jp-JobsLog-cut").is_visible()
    try:
        assert ink(log.screenshot()) > 0.05  # not a blank pane
    except ImportError:
        pass
    # the note's button downloads the whole log, the cut line in full
    with page.expect_download() as download:
        first.locator(".jp-JobsLog-download").click()
    saved = Path(download.value.path()).read_text()
    assert saved == "abcdefghij" * 524288 + "\nafter\n"


def test_html_in_a_log_line_is_shown_as_text(page, lab):
    job = run(lab, "hostile", HOSTILE)
    lab.wait(job["id"])
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsView .jp-JobsLog-line:has-text('a link')")
    shown = lines(page)
    assert shown == ['<img src=x onerror="window.__pwned = 1"><b>not bold</b>',
                     '<img src=x onerror="window.__pwned = 2"> <script>window.__pwned = 3</script>',
                     'a link &lt;escaped&gt; &amp;'], shown
    assert styles(page, '<img src=x onerror="window.__pwned = 2">')["color"] == "rgb(231, 92, 88)"
    page.fill(".jp-JobsView [aria-label='search the log']", "img")  # highlighted pieces too
    page.wait_for_selector(".jp-JobsLogSearch .jp-JobsMuted:has-text('of 2 lines')")
    found = page.evaluate("""() => {
        const log = document.querySelector('.jp-JobsView .jp-JobsLog');
        return {elements: [...log.querySelectorAll('img, b, script, a, iframe')].length,
                marks: [...log.querySelectorAll('mark')].map(m => m.textContent), pwned: window.__pwned ?? null};
    }""")
    assert found == {"elements": 0, "marks": ["img", "img"], "pwned": None}, found
