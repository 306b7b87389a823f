"""The trajectory viewer and the Snakemake report, opened in a real headless browser (Debian's chromium
driven by playwright): no console errors, the episodes show, the filters work."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from conftest import REPO, SMOKE_CONFIG, snakemake
from duomem.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from duomem.prompts import MEMORY_HEADER, SYSTEM_PROMPT
from duomem.references import load_references
from duomem.viewer import build_viewer, split_completion

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("the viewer tests need Debian's chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, path):
    """Load a local file; return the page and the list that collects console errors and page errors."""
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(Path(path).resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors


def visible_episodes(page):
    return page.locator("details.episode:visible").count()


TYPES = ["pick_heat_then_place_in_recep", "look_at_obj_in_light"]


def write_inputs(tmp_path):
    """Four episodes (two types, one win each) and a 3-script bank whose embeddings make the
    retrieval known: task 0/1 are nearest to memory 0 then 2, tasks 2/3 to memory 1 then 2."""
    records = []
    for i in range(4):
        won = i % 2 == 0
        steps = 3 if won else 5
        turns = [{"completion": f"Thought: step {s} of task {i}.\nAction: go to desk {s}", "action": f"go to desk {s}",
                  "problem": None, "admissible": True, "observation": f"You arrive at desk {s}."}
                 for s in range(1, steps + 1)]
        if i == 3:  # text that must stay text, and an unusable completion
            turns[0]["observation"] = "</script><script>alert('x')</script><b>bold</b>"
            turns[1].update(completion="I am not sure what to do", action="", problem="no_action",
                            admissible=False, observation="Nothing happens.")
        records.append({"task_id": f"valid_unseen/{TYPES[i // 2]}-{i}/trial_1", "task_type": TYPES[i // 2],
                        "task": f"do task {i}", "game": f"g{i}/game.tw-pddl", "won": won, "steps": steps,
                        "seconds": 1.5, "invalid_steps": int(i == 3), "actions": [t["action"] for t in turns],
                        "prompt_tokens": 0, "completion_tokens": 0,
                        "first_observation": f"-= Welcome =-\n\nYou are in a room.\n\nYour task is to: do task {i}.",
                        "turns": turns})
    write_jsonl_atomic(tmp_path / "episodes.jsonl", records)
    memories = [{"memory_id": f"m{j}", "task_id": f"train/x-{j}", "task_type": TYPES[0], "task": f"t{j}",
                 "script": f"SCRIPT-{j}: go, take, heat, move.", "tokens": 8} for j in range(3)]
    write_json_atomic(tmp_path / "memories.json", {"memories": memories})
    np.save(tmp_path / "bank.npy", np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.6]], dtype=np.float32))
    (tmp_path / "bank.ids.json").write_text(json.dumps([m["memory_id"] for m in memories]))
    np.save(tmp_path / "queries.npy", np.array([[1.0, 0.1], [1.0, 0.0], [0.1, 1.0], [0.0, 1.0]], dtype=np.float32))
    (tmp_path / "queries.ids.json").write_text(json.dumps([r["task_id"] for r in records]))
    return records


def test_split_completion():
    assert split_completion("Thought: I go.\nAction: go to desk 1") == ("I go.", "Action: go to desk 1")
    assert split_completion("no structure") == ("no structure", "")


def test_viewer_rebuilds_the_prompt_and_filters_in_a_browser(tmp_path, browser):
    records = write_inputs(tmp_path)
    out = tmp_path / "viewer.html"
    page_text = build_viewer(tmp_path / "episodes.jsonl", out, memory="memp-cd-k2",
                             reference=str(REPO / "duomem/reference_trajectories.json"),
                             memories=tmp_path / "memories.json", bank=tmp_path / "bank.npy",
                             queries=tmp_path / "queries.npy", title="unit viewer")
    assert "</script><script>alert" not in page_text  # the data cannot close its <script> element
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page_text, re.S)
                      .group(1))
    assert data["system"] == SYSTEM_PROMPT
    assert data["references"][TYPES[0]] == load_references()[TYPES[0]]
    eps = data["episodes"]
    assert [e["scripts"] for e in eps] == [["SCRIPT-0: go, take, heat, move.", "SCRIPT-2: go, take, heat, move."]] * 2 \
        + [["SCRIPT-1: go, take, heat, move.", "SCRIPT-2: go, take, heat, move."]] * 2
    assert eps[0]["first_user_memory"].startswith(MEMORY_HEADER) and "Memory 2: SCRIPT-2" in eps[0]["first_user_memory"]

    page, errors = open_page(browser, out)
    assert page.locator("details.episode").count() == 4 and visible_episodes(page) == 4
    assert page.locator("#count").inner_text() == "4 of 4 episodes"
    page.select_option("#outcome-filter", "won")
    assert visible_episodes(page) == sum(r["won"] for r in records) == 2
    page.select_option("#type-filter", TYPES[1])
    assert visible_episodes(page) == 1 and page.locator("#count").inner_text() == "1 of 4 episodes"
    page.select_option("#outcome-filter", "lost")
    ep = page.locator("details.episode:visible")
    assert "do task 3" in ep.inner_text()
    ep.locator("summary").first.click()
    expect(ep.locator("ol.turns > li")).to_have_count(5)  # the body is built when the episode opens
    assert "</script><script>alert('x')</script><b>bold</b>" in ep.locator("ol.turns").inner_text()
    assert "no_action" in ep.inner_text() and "not admissible" in ep.inner_text()
    assert "SCRIPT-1" in ep.locator("pre.memory").inner_text()
    ep.locator("summary", has_text="Reference trajectory").click()
    reference = load_references()[TYPES[1]]
    expect(ep.locator(".msg-assistant")).to_have_count(len(reference) // 2)
    assert reference[-1]["content"].splitlines()[-1] in ep.inner_text()
    page.fill("#search", "nothing matches this")
    assert visible_episodes(page) == 0
    assert errors == []
    page.close()


def test_viewer_without_memory_shows_no_reference(tmp_path, browser):
    write_inputs(tmp_path)
    out = tmp_path / "none.html"
    build_viewer(tmp_path / "episodes.jsonl", out, memory="none", title="no memory")
    page, errors = open_page(browser, out)
    page.locator("details.episode summary").first.click()
    expect(page.locator("details.episode ol.turns").first).to_be_visible()
    body = page.locator("details.episode").first.inner_text()
    assert "Reference trajectory: none" in body and "memory scripts" not in body
    assert errors == []


def test_smoke_viewer_and_report_in_a_browser(smoke_run, browser, tmp_path):
    """The smoke run's viewer pages, and `snakemake --report` over the smoke run."""
    results = smoke_run / "results"
    pages = sorted((results / "viewer").rglob("*.html"))
    assert pages, "the smoke run built no viewer page"
    for html in pages:
        rel = html.relative_to(results / "viewer").with_suffix("")
        episodes = read_jsonl(results / "eval" / rel / "episodes.jsonl")
        page, errors = open_page(browser, html)
        assert page.locator("details.episode").count() == len(episodes)
        won = sum(e["won"] for e in episodes)
        page.select_option("#outcome-filter", "won")
        assert visible_episodes(page) == won
        assert errors == [], (html, errors)
        page.close()

    report = tmp_path / "report.html"
    snakemake("--report", str(report), "--configfile", str(SMOKE_CONFIG), workdir=smoke_run, timeout=600)
    size_mb = os.path.getsize(report) / 1e6
    text = report.read_text()
    for category in ("Table 1", "Table 7", "Paper comparison", "Trajectories"):
        assert category in text
    page, errors = open_page(browser, report)
    # The report links every viewer page (Trajectories > model) and shows it in a frame.
    page.get_by_text("Trajectories", exact=True).click()
    page.get_by_text("tiny-random", exact=True).first.click()
    expect(page.locator("tr", has_text="valid_unseen")).to_have_count(
        len([p for p in pages if p.parent.parent.name == "tiny-random"]))
    page.locator("tr", has_text="memp-cd-k2").first.locator("a[iconname=eye]").click()
    frame = page.frame_locator("iframe").first
    expect(frame.locator("details.episode")).to_have_count(6)
    assert errors == [], errors
    print(f"report: {size_mb:.1f} MB")
