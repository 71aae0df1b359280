"""The review panel in the real App (headless Chromium): queue -> flagged frame -> click -> re-propagate.

Uses the App server, browser and clip of ``test_app_browser.py``; the clip's stored labels here have
object 1 cut to a sliver on frame 3 (so frames 3 and 4 are flagged). Screenshots go to
``artifacts/screenshots/`` (copied to docs/images for the README).
"""

import numpy as np
import pytest

from test_app_browser import (  # noqa: F401  (fixtures)
    RUN_TIMEOUT_MS,
    _input,
    _screenshot,
    app_server,
    browser,
    browser_dataset,
    playwright_api,
    screenshot_on_failure,
)

FIELD = "review_tracks"


@pytest.fixture(scope="module")
def review_dataset(browser_dataset):
    """The browser clip (4 frames, 428x240) as a second dataset with stored labels to review."""
    import fiftyone as fo

    from samtrack_ops.fiftyone.runs import write_results
    from samtrack_ops.pipeline import FrameResult

    dataset = fo.Dataset("samtrack-review-browser")
    dataset.persistent = True
    dataset.add_sample(fo.Sample(filepath=browser_dataset.first().filepath))
    dataset.compute_metadata()
    maps = []
    for number in range(1, 5):
        label_map = np.zeros((240, 428), np.uint8)
        label_map[90:170, 200:330] = 1
        label_map[20:60, 20:80] = 2
        if number == 3:
            label_map[120:170, 200:330] = 0  # object 1 cut: flagged
        maps.append(label_map)
    write_results(dataset, dataset.first().id, (FrameResult(i, m, []) for i, m in enumerate(maps)),
                  {FIELD: "Detections"}, FIELD)
    yield dataset
    dataset.delete()


def test_review_panel_queue_click_correct(browser, app_server, review_dataset, sam_vit_b_random_ckpt,
                                          r50_deaotl_ckpt):
    page = browser.new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{app_server.url}/datasets/{review_dataset.name}")
    page.get_by_text("1 sample").wait_for()
    before = review_dataset.first().frames[3][FIELD].detections[0]
    with screenshot_on_failure(page, app_server, "review_panel"):
        page.locator("[data-cy='new-panel-btn']").first.click()
        page.locator("[data-cy='new-panel-option-review_panel']").click()
        _input(page, "Tracked label field").fill(FIELD)
        page.get_by_role("button", name="Build review queue").click()
        page.get_by_text("flagged range(s)").wait_for()
        page.get_by_label("Flagged frames (worst first)").click()
        page.get_by_role("option").first.click()
        clickable_frame = page.locator(".js-plotly-plot .nsewdrag").first
        clickable_frame.wait_for()
        page.get_by_text("track 1").first.wait_for()
        _screenshot(page, "review_panel_flagged_frame")

        _input(page, "Track (index)").fill("1")
        _input(page, "sam checkpoint (empty = default)").fill(str(sam_vit_b_random_ckpt))
        _input(page, "tracker checkpoint (empty = default)").fill(str(r50_deaotl_ckpt))
        clickable_frame.scroll_into_view_if_needed()
        box = clickable_frame.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 265 / 428, box["y"] + box["height"] * 130 / 240)
        page.get_by_role("button", name="Apply", exact=True).click()
        page.get_by_text("rewrote frames").wait_for(timeout=RUN_TIMEOUT_MS)
        clickable_frame.scroll_into_view_if_needed()
        _screenshot(page, "review_panel_corrected")

    sample = review_dataset.first()
    sample.reload()
    after = sample.frames[3][FIELD].detections[0]
    assert after.index == 1 and after["provenance"] == "corrected"
    assert after.id != before.id
    page.close()
