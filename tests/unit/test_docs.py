"""The README and docs/ stand alone: every link points to a file of this repository."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_link_of_the_docs_points_inside_the_repository() -> None:
    checked = 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert "://" not in target, f"{page.name} links outside the repository: {target}"
            assert path.is_relative_to(REPO) and path.exists(), f"{page.name} links to a missing file: {target}"
            checked += 1
    assert checked >= 5
