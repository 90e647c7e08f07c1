"""Open one page of the app under streamlit.testing.v1.AppTest, the way every page test starts."""
import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
HOME = str(REPO / "Home.py")


def open_page(ws, page: str, project: str | None = "demo", lang: str | None = None,
              timeout: float = 60) -> AppTest:
    """Home.py run once in workspace ``ws`` (with ``?project=`` / ``?lang=`` as a link would carry
    them), then ``page``; fails on any exception the page raised."""
    os.environ["XTUNER_STUDIO_HOME"] = str(ws)
    at = AppTest.from_file(HOME, default_timeout=timeout)
    if project:
        at.query_params["project"] = project
    if lang:
        at.query_params["lang"] = lang
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at
