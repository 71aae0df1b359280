"""The FiftyOne App for real: the plugin driven in headless Chromium against a live App server.

One App server (``tests/app_server.py``) serves a one-video dataset (4 frames of blackswan, 428x240,
H.264) from this session's throwaway database with this checkout as a plugin. Models are random-weight
real architectures (SAM ViT-B, R50-DeAOT-L) given to the forms as checkpoint files. Screenshots go to
``artifacts/screenshots/`` (also on failure).

Every wait is on the App's own state (a text, a selector, a field of the dataset), never a fixed sleep; only
the App server's start-up is retried once.
"""

import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import playwright.sync_api as playwright_api
from app_server import AppServer, chromium_context, chromium_path

SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
CLIP_FRAMES = 4
LOAD_TIMEOUT_MS = 90_000
RUN_TIMEOUT_MS = 300_000  # random-weight SAM ViT-B + DeAOT on a loaded 2-core CPU
# expect() assertions wait on the App's state as long as page loads may take (its 5 s default failed on a
# loaded machine while the form was still validating)
playwright_api.expect.set_options(timeout=LOAD_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser_dataset(blackswan_mp4, tmp_path_factory):
    """A persistent one-video dataset the App server can read: a 4-frame 428x240 H.264 clip."""
    import fiftyone as fo

    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: the FiftyOne App needs it for video datasets (apt-get install ffmpeg)")
    clip = tmp_path_factory.mktemp("browser") / "blackswan_clip.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(blackswan_mp4), "-frames:v", str(CLIP_FRAMES),
         "-vf", "scale=428:240", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )
    dataset = fo.Dataset("samtrack-browser")
    dataset.persistent = True
    dataset.add_sample(fo.Sample(filepath=str(clip)))
    dataset.compute_metadata()
    yield dataset
    dataset.delete()


@pytest.fixture(scope="module")
def app_server(browser_dataset, tmp_path_factory):
    server = AppServer(tmp_path_factory.mktemp("app") / "server.log")
    try:
        server.start()
    except RuntimeError:  # one retry of the start-up (a busy machine); assertions are never retried
        server = AppServer(tmp_path_factory.mktemp("app-retry") / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium_path()  # a clear error when Chromium is missing
    with playwright_api.sync_playwright() as playwright:
        with chromium_context(playwright, tmp_path_factory.mktemp("chromium-profile")) as context:
            yield context


@contextlib.contextmanager
def _dataset_tab(browser, app_server, dataset):
    """A fresh tab showing the grid of a one-video ``dataset`` (no video open, no banner)."""
    tab = browser.new_page()
    tab.set_default_timeout(LOAD_TIMEOUT_MS)
    tab.goto(f"{app_server.url}/datasets/{dataset.name}")
    tab.get_by_text("1 sample").wait_for()
    if tab.locator("#modal.modalon").count():  # the App restores a video left open by an earlier test
        tab.keyboard.press("Escape")
        tab.locator("#modal.modalon").wait_for(state="detached")
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def page(browser, app_server, browser_dataset):
    """A fresh tab showing the dataset."""
    with _dataset_tab(browser, app_server, browser_dataset) as tab:
        yield tab


@contextlib.contextmanager
def screenshot_on_failure(page, app_server, name):
    """Saves ``FAILED-<name>.png`` and adds the App server's log to the error when the block fails."""
    try:
        yield
    except Exception as error:
        _screenshot(page, f"FAILED-{name}")
        raise AssertionError(f"{error}\n--- App server log ---\n{app_server.log_tail()}") from error


def _screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def _input(scope, label):
    """The input element of the form field whose label text is ``label``."""
    return scope.locator(
        f"xpath=.//*[normalize-space(text())='{label}']/ancestor::div[.//input][1]//input"
    ).first


def _dropdown(scope, label):
    """The drop-down (combobox) of the panel field whose label text is ``label``."""
    return scope.locator(
        f"xpath=.//*[normalize-space(text())='{label}']/ancestor::div[.//*[@role='combobox']][1]//*[@role='combobox']"
    ).first


def _wait_until_drawn(locator, attempts=40):
    """Waits until ``locator`` looks the same in two screenshots in a row (drawn, e.g. the player's frame)."""
    previous = None
    for _ in range(attempts):
        try:
            current = locator.screenshot()
        except playwright_api.Error:  # re-rendered (detached) while being captured: look again
            current = None
        if current is not None and current == previous:
            return
        previous = current
    raise AssertionError(f"{locator} kept changing over {attempts} screenshots")


def _open_track_form_with_a_click(page):
    """Opens track_objects from the operator browser and adds one (empty) click; returns the form."""
    page.keyboard.press("`")
    page.get_by_placeholder("Search operations by name...").fill("segment and track")
    page.get_by_text("samtrack: segment and track objects").first.click()
    form = page.locator("form")
    form.get_by_text("Key frame number (first frame = 1)").wait_for()
    page.get_by_role("button", name="Add clicks").click()
    return form


def test_form_names_the_empty_field_next_to_the_prompts(page, app_server):
    """An empty x of a click: the message names the click and the field, under the prompts (not a raw 'x')."""
    with screenshot_on_failure(page, app_server, "form_empty_field"):
        form = _open_track_form_with_a_click(page)
        _input(form, "y (pixels)").press_sequentially("131")
        message = form.get_by_text("Click 1: 'x (pixels)' is empty")
        message.wait_for()
        playwright_api.expect(form.get_by_text("'x'", exact=True)).to_have_count(0)
        playwright_api.expect(page.get_by_role("button", name="Execute", exact=True)).to_be_disabled()
        # shown just under the prompts: above the model settings, not at the end of the form
        message_top = message.bounding_box()["y"]
        assert message_top < form.get_by_text("sam_checkpoint", exact=True).bounding_box()["y"]
        assert message_top > _input(form, "y (pixels)").bounding_box()["y"]
        message.scroll_into_view_if_needed()
        _screenshot(page, "track_objects_form_problem")
        _input(form, "x (pixels)").press_sequentially("264")
        message.wait_for(state="detached")
        page.keyboard.press("Escape")


def test_track_objects_form(page, app_server, browser_dataset, sam_vit_b_random_ckpt, r50_deaotl_ckpt):
    """Operator browser -> track_objects -> typed click prompt -> Execute -> a new frame field in the App."""
    with screenshot_on_failure(page, app_server, "track_objects_form"):
        form = _open_track_form_with_a_click(page)
        _input(form, "x (pixels)").press_sequentially("264")
        _input(form, "y (pixels)").press_sequentially("131")
        _input(form, "sam_checkpoint").fill(str(sam_vit_b_random_ckpt))
        _input(form, "tracker_checkpoint").fill(str(r50_deaotl_ckpt))
        _input(form, "Output frame field").fill("browser_tracks")
        execute = page.get_by_role("button", name="Execute", exact=True)
        playwright_api.expect(execute).to_be_enabled()
        _input(form, "x (pixels)").scroll_into_view_if_needed()
        _screenshot(page, "track_objects_form")
        started = time.monotonic()
        execute.click()
        page.get_by_text("frames.browser_tracks", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
        print(f"track_objects from the App form: {time.monotonic() - started:.0f} s")
        page.get_by_role("button", name="Close", exact=True).click()

        browser_dataset.reload()
        assert browser_dataset.has_frame_field("browser_tracks")
        frames = browser_dataset.first().frames
        tracked = [frames[n]["browser_tracks"] for n in range(1, CLIP_FRAMES + 1)]
        assert all(labels is not None for labels in tracked), "every frame of the clip gets a Detections"
        assert tracked[0].detections, "the clicked object is on its key frame"
        assert {d.index for d in tracked[0].detections} == {1}

        page.locator("[data-cy='looker']").first.click()  # open the video: labels drawn on the frame
        modal_entry = page.locator("[data-cy='sidebar-field-container-frames.browser_tracks']").last
        count = modal_entry.locator("[data-cy='entry-count-all']")
        playwright_api.expect(count).to_have_text(str(CLIP_FRAMES))  # frames with labels, in the open video
        _wait_until_drawn(page.locator("#modal [data-cy='looker']").first)
        _screenshot(page, "tracked_labels_in_app")
        page.keyboard.press("Escape")
        page.locator("#modal.modalon").wait_for(state="detached")


def _frame_image_source(page):
    return page.locator(".js-plotly-plot .imagelayer image, .js-plotly-plot g.im image").first.get_attribute("href")


def test_click_prompt_panel(page, app_server, browser_dataset, sam_vit_b_random_ckpt, r50_deaotl_ckpt):
    """Panel: a click shows that SAM is working, then the mask; Add object lists the object; Track shows
    per-frame progress and "Done" and writes the field; the delegated Track queues the object."""
    from fiftyone.operators.delegated import DelegatedOperationService

    with screenshot_on_failure(page, app_server, "click_prompt_panel"):
        page.locator("[data-cy='new-panel-btn']").first.click()
        page.locator("[data-cy='new-panel-option-click_prompt_panel']").click()
        clickable_frame = page.locator(".js-plotly-plot .nsewdrag").first
        clickable_frame.wait_for()
        frame_before = _frame_image_source(page)
        _input(page, "SAM checkpoint (empty = model cache)").fill(str(sam_vit_b_random_ckpt))
        _input(page, "DeAOT checkpoint (empty = model cache)").fill(str(r50_deaotl_ckpt))
        _input(page, "Output frame field").fill("panel_tracks")

        clickable_frame.scroll_into_view_if_needed()
        box = clickable_frame.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 264 / 428, box["y"] + box["height"] * 131 / 240)
        page.get_by_text("Computing the mask").wait_for()  # at once, while SAM runs
        assert _frame_image_source(page) != frame_before, "the click is drawn before SAM answers"
        preview = page.get_by_text("Preview of 'object' on frame 1")
        preview.wait_for(timeout=RUN_TIMEOUT_MS)
        # the preview line and the buttons are above the frame, not below the plot's empty space
        frame_top = clickable_frame.bounding_box()["y"]
        assert preview.bounding_box()["y"] < frame_top
        assert page.get_by_role("button", name="Add object").bounding_box()["y"] < frame_top
        _screenshot(page, "panel_click_preview")

        _input(page, "Object name").fill("swan")
        page.get_by_role("button", name="Add object").click()
        page.get_by_text("Objects to track:").wait_for()
        playwright_api.expect(page.get_by_text("on frame 1 (1 clicks)")).to_be_visible()
        playwright_api.expect(page.get_by_text("swan", exact=True)).to_be_visible()

        page.get_by_role("button", name="Track", exact=True).click()
        page.get_by_text(re.compile(r"Tracking \.\.\. frame [1-4]/4")).wait_for(timeout=RUN_TIMEOUT_MS)
        page.get_by_text("Done:").wait_for(timeout=RUN_TIMEOUT_MS)
        page.get_by_text("frames.panel_tracks", exact=True).wait_for()  # the App reloaded: the field in the sidebar
        _screenshot(page, "panel_track_done")
        browser_dataset.reload()
        assert browser_dataset.has_frame_field("panel_tracks")
        [tracked] = browser_dataset.values("frames.panel_tracks")
        assert len(tracked) == CLIP_FRAMES and all(labels is not None for labels in tracked)
        assert [d.label for d in tracked[0].detections] == ["swan"]

        page.get_by_label("Run as a delegated operation").check()
        _input(page, "Output frame field").fill("panel_queued")
        page.get_by_role("button", name="Track", exact=True).click()
        page.get_by_text("Queued 1 delegated operation").wait_for()
        _screenshot(page, "panel_track_queued")

    operations = DelegatedOperationService().list_operations(dataset_name=browser_dataset.name)
    [operation] = [op for op in operations if op.operator.endswith("/track_objects")]
    run = operation.context.request_params["params"]["run"]
    assert run["label_field"] == "panel_queued"
    assert run["sample_ids"] == [browser_dataset.first().id]
    assert [(p["label"], p["frame"]) for p in run["prompts"]] == [("swan", 0)]


REVIEW_FIELD = "review_tracks"
REVIEW_FRAMES = 8
DRIFTED = (3, 4)  # frames (1-based) on which object 1 (the rider) drifted: the queue flags frames 3 and 5
HAND_FIXED = 6  # object 1 was fixed by hand in the App on this frame: re-propagation stops before it
REVIEW_VIEWPORT = {"width": 1400, "height": 1250}


@pytest.fixture(scope="module")
def review_dataset(davis_dir, davis_frames, tmp_path_factory):
    """``(dataset, ground truth)``: bmx-trees (8 frames, 428x240, H.264) with ``frames.review_tracks`` as a
    tracking run would store it: the ground truth split into objects 1 (rider) and 2 (bike), object 1
    drifting on DRIFTED and edited by hand on HAND_FIXED; ground truth = the (240, 428) label maps."""
    import cv2
    import fiftyone as fo

    from samtrack_ops.fiftyone.runs import write_results
    from samtrack_ops.pipeline import FrameResult, ObjectInfo
    from test_review import _drifted, _two_objects

    clip = tmp_path_factory.mktemp("review") / "bmx-trees.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-framerate", "24", "-i", str(davis_dir / "JPEGImages/480p/bmx-trees/%05d.jpg"),
         "-frames:v", str(REVIEW_FRAMES), "-vf", "scale=428:240", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )
    masks = davis_frames("bmx-trees", REVIEW_FRAMES).masks
    truth = [_two_objects(cv2.resize(m.astype(np.uint8), (428, 240), interpolation=cv2.INTER_NEAREST) > 0)
             for m in masks]
    stored = [_drifted(m) if number in DRIFTED else m for number, m in enumerate(truth, start=1)]
    dataset = fo.Dataset("samtrack-review-browser")
    dataset.persistent = True
    dataset.add_sample(fo.Sample(filepath=str(clip)))
    dataset.compute_metadata()
    objects = [ObjectInfo(1, "rider", 0.9), ObjectInfo(2, "bike", 0.9)]
    write_results(dataset, dataset.first().id, (FrameResult(i, m, objects) for i, m in enumerate(stored)),
                  {REVIEW_FIELD: "Detections"}, REVIEW_FIELD)
    sample = dataset.first()
    [rider] = [d for d in sample.frames[HAND_FIXED][REVIEW_FIELD].detections if d.index == 1]
    rider.mask = np.ones_like(rider.mask)  # what a box-filling edit in the App's annotation tools stores
    sample.save()
    yield dataset, truth
    dataset.delete()


def _frame_documents(dataset):
    """{frame number: the frame's document in the database} of the dataset's one video."""
    import fiftyone.core.odm as foo

    frames = foo.get_db_conn()[dataset._frame_collection_name]
    return {doc["frame_number"]: doc for doc in frames.find({})}


def _inside(label_map, object_id):
    """(x, y) of the object's pixel nearest to its centroid: a click that lands on the object."""
    rows, cols = np.nonzero(label_map == object_id)
    nearest = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return int(cols[nearest]), int(rows[nearest])


def _click_on_frame(page, frame, x, y, frame_size=(240, 428)):
    """Clicks pixel (x, y) of the video frame shown in the panel's Plotly ``frame`` (its drag layer)."""
    frame.scroll_into_view_if_needed()
    box = frame.bounding_box()
    page.mouse.click(box["x"] + box["width"] * (x + 0.5) / frame_size[1],
                     box["y"] + box["height"] * (y + 0.5) / frame_size[0])


def test_review_panel_queue_flagged_frame_click_correct(browser, app_server, review_dataset, sam_vit_b_random_ckpt,
                                                        r50_deaotl_ckpt):
    """Review panel: "Build review queue" lists the drift; picking it opens frame 3 with the stored tracks;
    a click on the rider + Apply re-segments track 1 and re-propagates it up to the frame before the
    hand-fixed one; the panel reports frames 3..5, and only those frames change in the database."""
    dataset, truth = review_dataset
    before = _frame_documents(dataset)
    first = DRIFTED[0]
    with _dataset_tab(browser, app_server, dataset) as page, screenshot_on_failure(page, app_server, "review_panel"):
        page.set_viewport_size(REVIEW_VIEWPORT)  # the whole panel in the screenshots
        page.locator("[data-cy='new-panel-btn']").first.click()
        page.locator("[data-cy='new-panel-option-review_panel']").click()
        page.get_by_text("Build the review queue and pick a flagged range").wait_for()  # no frame open yet
        playwright_api.expect(_input(page, "Tracked label field")).to_have_value(REVIEW_FIELD)  # the only one
        page.get_by_role("button", name="Build review queue").click()
        page.get_by_text(f"2 flagged range(s) in frames.{REVIEW_FIELD}, worst first").wait_for()
        _dropdown(page, "Flagged frames (worst first)").click()
        flagged = page.get_by_role("option", name=re.compile(rf"^frame {first}: shift \(suspicion 1\.00\)"))
        _wait_until_drawn(page.get_by_role("listbox"))  # the menu has faded in
        _screenshot(page, "review_queue")
        flagged.click()

        frame = page.locator(".js-plotly-plot .nsewdrag").first
        frame.wait_for()
        page.get_by_text(re.compile(r"track 1 rider \(tracked, suspicion")).wait_for()
        playwright_api.expect(_input(page, "Frame")).to_have_value(str(first))
        _screenshot(page, "review_panel_flagged_frame")

        _input(page, "Track (index)").fill("1")
        _input(page, "sam checkpoint (empty = default)").fill(str(sam_vit_b_random_ckpt))
        _input(page, "tracker checkpoint (empty = default)").fill(str(r50_deaotl_ckpt))
        apply = page.get_by_role("button", name="Apply", exact=True)
        apply.click()  # no click on the frame yet: the panel says what is missing
        page.get_by_text("Correction not applied: click on the object (or draw a box)").wait_for()
        drawn_before = _frame_image_source(page)
        _click_on_frame(page, frame, *_inside(truth[first - 1], 1))
        playwright_api.expect(page.locator(".js-plotly-plot .imagelayer image, .js-plotly-plot g.im image").first
                              ).not_to_have_attribute("href", drawn_before)  # the click is drawn
        apply.click()
        page.get_by_text(f"Correcting: resegment track 1 on frame {first}, re-propagating").wait_for()
        report = page.get_by_text("Done. Track 1: rewrote frames")
        report.wait_for(timeout=RUN_TIMEOUT_MS)
        page.get_by_text(re.compile(r"track 1 rider \(corrected, suspicion")).wait_for()
        report.scroll_into_view_if_needed()
        _wait_until_drawn(page.locator("[data-cy='looker']").first)  # the grid, reloaded with the new labels
        _screenshot(page, "review_panel_corrected")
        assert report.inner_text() == (f"Done. Track 1: rewrote frames {first}..{HAND_FIXED - 1} "
                                       f"({HAND_FIXED - 1 - first} tracked), then stopped: next frame edited by hand.")

    after = _frame_documents(dataset)
    rewritten = range(first, HAND_FIXED)
    assert {n: d for n, d in after.items() if n not in rewritten} == {n: d for n, d in before.items()
                                                                      if n not in rewritten}
    for number in rewritten:
        old = {d["index"]: d for d in before[number][REVIEW_FIELD]["detections"]}
        new = {d["index"]: d for d in after[number][REVIEW_FIELD]["detections"]}
        assert new[1]["provenance"] == "corrected" and new[1]["_id"] != old[1]["_id"]
        assert new[2]["label"] == "bike"
