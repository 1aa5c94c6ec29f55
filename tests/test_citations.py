"""Everything the repository cites is in the repository.

Docstrings, comments and docs cite files by relative path and sections of markdown pages by
anchor (``docs/original_polarmask.md#ray-targets``). A citation of a file that only exists next to
a particular checkout (a path that climbs out of the repository, or a section sign after a
document the repository does not hold) is useless to every other reader.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ('README.md', 'setup.py', 'polarmask', 'configs', 'docs', 'tools', 'tests', 'demo')
SUFFIXES = {'.py', '.md', '.sh', '.txt', '.toml', '.cpp', '.cu', '.h'}
SECTION_SIGN = '\N{SECTION SIGN}'

# One or more parent steps and a path, not after a word character or a dot (an ellipsis).
PARENT_PATH = re.compile(r'(?<![\w.])((?:\.\./)+)([\w.-]+(?:/[\w.-]+)*)')
# A markdown page followed by '#' and the anchor of one of its sections.
ANCHORED = re.compile(r'((?:[\w.-]+/)*[\w.-]+\.md)#([\w-]+)')
MARKDOWN = re.compile(r'[\w./-]+\.md\b')


def _files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob('*'))
        files += [p for p in candidates if p.is_file() and p.suffix in SUFFIXES]
    return files


def _repository_paths() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in FILES}


def _exists(document: str, citing: Path) -> Path | None:
    """The cited file, relative to the citing file or to the repository root."""
    for base in (citing.parent, ROOT):
        path = (base / document).resolve()
        if path.is_file() and path.is_relative_to(ROOT):
            return path
    return None


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def _anchors(page: Path) -> set[str]:
    return {
        _slug(line.lstrip('#'))
        for line in page.read_text().splitlines()
        if re.match(r'#{1,6} ', line)
    }


FILES = _files()


def test_scan_covers_the_package_and_the_docs():
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {'README.md', 'polarmask/structures/polar.py', 'docs/original_polarmask.md'} <= names


def test_parent_paths_name_files_of_the_repository():
    """A path climbing to a parent folder must end at a file of the repository, never beside it."""
    paths = _repository_paths()
    outside = []
    for file in FILES:
        for number, line in enumerate(file.read_text(errors='replace').splitlines(), start=1):
            for match in PARENT_PATH.finditer(line):
                rest = match.group(2).rstrip('.')
                if not any(path == rest or path.endswith('/' + rest) for path in paths):
                    outside.append(f'{file.relative_to(ROOT)}:{number}: {match.group(0)}')
    assert not outside, 'cited paths outside the repository:\n' + '\n'.join(outside)


def test_sections_are_cited_in_documents_of_the_repository():
    """A line with a section sign must name, before it, markdown pages the repository holds."""
    wrong = []
    for file in FILES:
        for number, line in enumerate(file.read_text(errors='replace').splitlines(), start=1):
            if SECTION_SIGN not in line:
                continue
            documents = MARKDOWN.findall(line[: line.index(SECTION_SIGN)])
            if not documents or any(_exists(name, file) is None for name in documents):
                wrong.append(f'{file.relative_to(ROOT)}:{number}: {line.strip()}')
    assert not wrong, 'section citations of documents not in the repository:\n' + '\n'.join(wrong)


def test_cited_sections_exist():
    missing = []
    for file in FILES:
        for document, anchor in ANCHORED.findall(file.read_text(errors='replace')):
            page = _exists(document, file)
            if page is None or anchor not in _anchors(page):
                missing.append(f'{file.relative_to(ROOT)}: {document}#{anchor}')
    assert not missing, 'citations of sections that do not exist:\n' + '\n'.join(missing)
