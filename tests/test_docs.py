"""The documentation: the API page's code runs, every relative link resolves, and the README stays short (issue 20).

* ``test_api_page_runs``: every ```` ```python ```` block of ``docs/api.md`` runs, in page order, in one namespace,
  as the cells of a notebook would. It runs in a temporary working directory that holds a link to ``configs/``, so
  the page's ``results/...`` files land there and nothing is written into the repository; matplotlib draws with its
  ``Agg`` backend. Lines that start with ``%`` (IPython magics such as ``%matplotlib inline``) are left out. A block
  fenced ```` ```python no-run ```` is illustrative only (for example one that needs a cluster or a Dask scheduler)
  and is not run; any other fence (```` ```text ````, ```` ```toml ````) is not Python. The printed outputs shown on
  the page are not compared: they move when the model is recalibrated.
* ``test_block_runner_fails_on_a_raising_block``: the runner stops at a block that raises and names its line, so the
  test above fails when the page's code breaks.
* ``test_relative_links_resolve``: every relative Markdown link (and image) in ``README.md`` and ``docs/*.md``
  points to an existing file, and a ``#fragment`` to a heading of that file (GitHub's anchors).
* ``test_readme_is_short``: ``README.md`` has at most 200 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_PAGE = ROOT / "docs" / "api.md"
README_MAX_LINES = 200

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<code>.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\((?P<target>[^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$", re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```` ```python ```` blocks of a Markdown page, as (line of the first code line, code), in page order;
    ```` ```python no-run ```` blocks are left out, and so are IPython magic lines (blanked, keeping line numbers)."""
    blocks = []
    for m in FENCE.finditer(text):
        if m["info"].split() != ["python"]:
            continue
        line = text.count("\n", 0, m.start("code")) + 1
        code = "\n".join("" if ln.lstrip().startswith("%") else ln for ln in m["code"].splitlines())
        blocks.append((line, code))
    return blocks


def run_blocks(blocks: list[tuple[int, str]], source: str, namespace: dict | None = None) -> dict:
    """Run the blocks one after another in one namespace, as notebook cells; a block that raises stops the run with
    an AssertionError naming its line on the page (the traceback's line numbers are the page's)."""
    namespace = {"__name__": "__docs__"} if namespace is None else namespace
    for line, code in blocks:
        padded = "\n" * (line - 1) + code  # so that tracebacks give the page's line numbers
        try:
            exec(compile(ast.parse(padded, source), source, "exec"), namespace)  # noqa: S102 - the docs' own code
        except Exception as exc:
            raise AssertionError(f"{source}: the python block at line {line} raised {exc!r}") from exc
    return namespace


@pytest.mark.slow
def test_api_page_runs(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = python_blocks(API_PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 10  # the page is the notebook-style API page, not an empty one
    (tmp_path / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    try:
        namespace = run_blocks(blocks, "docs/api.md")
    finally:
        plt.close("all")
    # what the page wrote went to the temporary folder
    assert (tmp_path / "results" / "netter1_400.h5").is_file()
    assert (tmp_path / "results" / "netter1_400_report" / "index.md").is_file()
    assert (tmp_path / "results" / "kidney_target_200.h5").is_file()
    assert namespace["summary"]["n_patients"] == 400


def test_block_runner_fails_on_a_raising_block():
    page = (
        "# A page\n\n```python\nx = 1\n%matplotlib inline\n```\n\n```python no-run\nraise SystemExit\n```\n\n"
        "```text\nnot python\n```\n\n```python\ny = x + 1\n```\n\n```python\nz = y\nz / 0\n```\n"
    )
    blocks = python_blocks(page)
    assert [line for line, _ in blocks] == [4, 17, 21]  # the no-run and text blocks are left out
    namespace = run_blocks(blocks[:2], "page.md")
    assert namespace["y"] == 2  # one namespace, in order, magics skipped
    with pytest.raises(AssertionError, match=r"page\.md: the python block at line 21 raised ZeroDivisionError") as err:
        run_blocks(blocks, "page.md")
    tb = err.value.__cause__.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_lineno == 22  # the page's line of `z / 0`


def _without_code(text: str) -> str:
    """The page without fenced code blocks and inline code spans (links and headings there are not Markdown)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file: lower case, punctuation other than - and _ removed, spaces as
    hyphens, and -1, -2, ... for repeated headings."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(text):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m["text"])  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def markdown_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(path: Path) -> list[str]:
    targets = [m["target"] for m in LINK.finditer(_without_code(path.read_text(encoding="utf-8")))]
    return [t for t in targets if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", t)]  # not http:, mailto:, ...


def test_relative_links_resolve():
    broken = []
    checked = 0
    for page in markdown_pages():
        for target in relative_links(page):
            checked += 1
            file_part, _, fragment = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not dest.exists():
                broken.append(f"{where}: no file {dest}")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{where}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    assert checked > 50  # the pages were read
    assert not broken, "\n".join(broken)


def test_link_checker_sees_broken_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A `code` heading: here\n\n[ok](#title) [ok](#a-code-heading-here) "
                    "[bad](missing.md) [bad](#nowhere) `[code](not-a-link.md)` [web](https://example.org/x)\n\n"
                    "```\n[fenced](also-not-a-link.md)\n```\n", encoding="utf-8")
    assert relative_links(page) == ["#title", "#a-code-heading-here", "missing.md", "#nowhere"]
    assert anchors(page) == {"title", "a-code-heading-here"}


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the limit is {README_MAX_LINES}"
