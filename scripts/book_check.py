"""Checks of the built manual (docs/book) and of its sources, for scripts/book-check.sh.

  book_check.py ROOT

1. Every link and image of the built HTML that is not external resolves: to a file of the book,
   or (for links out of the book, e.g. ../report-lab.html) to a file of the repository; and every
   #fragment names an id (or a name) in its target page.
2. The Architecture chapter's layering table (between <!-- layers: begin --> and
   <!-- layers: end -->) is the ALLOWED table of tests/it/layers.rs, row by row.
3. The README's firewall rule blocks (after <!-- lab: NAME -->) are those of
   docs/src/firewall.md, which tests/it/lab_faults/host.rs loads in the namespace lab as written.
4. Every shell block of the manual and the README that runs mcprobe is introduced (in the text
   since the previous block or heading) by how it is covered: "Tested" (a test runs it) or
   "Needs a LAN" (it needs real hosts).

Standard library only. Exit status 1 with one line per problem.
"""

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key] or "")
        for key in ("href", "src"):
            if tag in ("a", "img", "link", "script", "iframe") and a.get(key):
                self.links.append(a[key] or "")


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def check_links(root: Path, problems: list[str]) -> int:
    book = root / "docs" / "book"
    pages = {p.resolve(): parse(p) for p in book.rglob("*.html")}
    if not pages:
        problems.append(f"{book}: no HTML pages: was the book built?")
        return 0
    count = 0
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            count += 1
            where = f"{path.relative_to(book.resolve())}: {link}"
            base = book if parts.path.startswith("/") else path.parent
            target = (base / unquote(parts.path).lstrip("/")).resolve() if parts.path else path
            if parts.path.endswith("/"):
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where}: no such file ({target})")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where}: no anchor #{parts.fragment} in {target.name}")
    return count


def check_layers(root: Path, problems: list[str]) -> None:
    rs = (root / "tests" / "it" / "layers.rs").read_text(encoding="utf-8")
    start = rs.index("const ALLOWED")
    block = rs[start : rs.index("];\n", start)]
    want = [
        (m, re.findall(r'"([a-z_:]+)"', deps))
        for m, deps in re.findall(r'\(\s*"([a-z_:]+)",\s*&\[([^\]]*)\]', block, re.S)
    ]
    doc = (root / "docs" / "src" / "architecture.md").read_text(encoding="utf-8")
    table = doc.split("<!-- layers: begin -->")[1].split("<!-- layers: end -->")[0]
    got = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            got.append((cells[0].strip("`"), re.findall(r"`([a-z_:]+)`", cells[1])))
    if got != want:
        problems.append(
            "docs/src/architecture.md: the layering table is not tests/it/layers.rs's ALLOWED "
            f"(book: {got}; test: {want})"
        )


def lab_blocks(text: str) -> dict[str, str]:
    out = {}
    for name, rest in re.findall(r"<!-- lab: ([a-z0-9-]+) -->\n(.*?)(?=\n<!-- lab: |\Z)", text, re.S):
        out[name] = rest.split("```")[1]
    return out


def check_firewall(root: Path, problems: list[str]) -> None:
    manual = lab_blocks((root / "docs" / "src" / "firewall.md").read_text(encoding="utf-8"))
    readme = lab_blocks((root / "README.md").read_text(encoding="utf-8"))
    if not manual:
        problems.append("docs/src/firewall.md: no <!-- lab: NAME --> blocks")
    for name, block in readme.items():
        if manual.get(name) != block:
            problems.append(f"README.md: firewall block {name} differs from docs/src/firewall.md's")


MARKERS = ("Tested", "Needs a LAN", "needs a LAN")


def check_examples(root: Path, problems: list[str]) -> int:
    files = sorted((root / "docs" / "src").glob("*.md")) + [root / "README.md"]
    count = 0
    for f in files:
        lines = f.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].lstrip().startswith("```"):
                indent = lines[i].index("`")
                lang = lines[i].strip()[3:].strip()
                end = next(j for j in range(i + 1, len(lines)) if lines[j][indent:].startswith("```"))
                body = lines[i + 1 : end]
                runs = any(re.match(r"\s*(\$ )?(sudo )?(mcprobe|cargo run) +[a-z-]", line) for line in body)
                if runs and lang in ("", "sh", "bash", "console"):
                    count += 1
                    # The text that introduces this block: back to the previous block or heading.
                    k = i - 1
                    while k >= 0 and not lines[k].lstrip().startswith(("```", "#")):
                        k -= 1
                    said = " ".join(lines[k + 1 : i])
                    if not any(m in said for m in MARKERS):
                        problems.append(
                            f"{f.relative_to(root)}:{i + 1}: an mcprobe example without "
                            "'Tested…' or 'Needs a LAN' just before it"
                        )
                i = end
            i += 1
    return count


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems: list[str] = []
    links = check_links(root, problems)
    check_layers(root, problems)
    check_firewall(root, problems)
    examples = check_examples(root, problems)
    for p in problems:
        print(f"book-check: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"book-check: ok: {links} internal links and anchors resolve; {examples} examples marked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
