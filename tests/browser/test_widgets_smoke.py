"""Smoke test for the front end alone: do plain ipywidgets render in JupyterLab?

When this fails the browser/JupyterLab/widget-manager setup is broken; when it
passes and test_panel_browser fails, the problem is in batch_magic's panel.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SMOKE_CELLS = [
    "import threading\nimport ipywidgets as w",
    (
        "label = w.HTML('clicks: 0')\n"
        "label.add_class('smoke-label')\n"
        "ticker = w.HTML('waiting')\n"
        "ticker.add_class('smoke-ticker')\n"
        "button = w.Button(description='Press me')\n"
        "button.add_class('smoke-button')\n"
        "button.on_click(lambda _: setattr(label, 'value', 'clicks: 1'))\n"
        "box = w.VBox([w.HTML('<b>smoke test</b>'), label, ticker, button])\n"
        "box.add_class('smoke-box')\n"
        "# An update pushed by the kernel with no user action, like a job finishing.\n"
        "threading.Timer(1.0, lambda: setattr(ticker, 'value', 'ticked')).start()\n"
        "box"
    ),
]


def test_widgets_render(notebook) -> None:
    from playwright.sync_api import expect

    notebook.write("smoke.ipynb", SMOKE_CELLS)
    notebook.open("smoke.ipynb")
    notebook.shot("opened")

    notebook.run_cell(0)
    out = notebook.run_cell(1)
    box = out.locator(".smoke-box")
    expect(box).to_be_visible(timeout=30_000)
    notebook.assert_no_widget_errors(1)
    notebook.shot("rendered")

    # Kernel -> front end, unprompted.
    expect(box.locator(".smoke-ticker")).to_contain_text("ticked", timeout=15_000)
    # Front end -> kernel -> front end.
    box.locator("button.smoke-button").click()
    expect(box.locator(".smoke-label")).to_contain_text("clicks: 1", timeout=15_000)
    notebook.assert_no_widget_errors(1)
    notebook.shot("clicked")
    notebook.shot("clicked-widget", box)
