"""scripts/english_corpus.py on small inputs made here: no downloads."""

import importlib.util
import io
import struct
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "english_corpus.py"
spec = importlib.util.spec_from_file_location("english_corpus", SCRIPT)
english_corpus = importlib.util.module_from_spec(spec)
sys.modules["english_corpus"] = english_corpus  # dataclasses look their module up there
spec.loader.exec_module(english_corpus)


def test_normalise_keeps_lines_and_one_blank_line_between_paragraphs():
    text = "  First\tline  \nsecond\x00 line\n\n\n\n\u00a0Next\r\nparagraph "
    assert english_corpus.normalise(text) == "First line\nsecond line\n\nNext\nparagraph\n"


def test_split_long_cuts_at_paragraphs_into_parts_under_the_limit():
    paragraph = "word " * 2_000  # 10 kB
    text = english_corpus.normalise("\n\n".join([paragraph] * 50))  # ~500 kB
    parts = list(english_corpus.split_long("a/b", text))
    assert [name for name, _ in parts] == ["a/b-part01", "a/b-part02", "a/b-part03"]
    assert all(len(part.encode()) <= english_corpus.MAX_DOCUMENT_BYTES for _, part in parts)
    assert "".join(part for _, part in parts).count("word") == text.count("word")


def test_osis_drops_notes_keeps_titles_and_the_space_a_note_stood_for():
    osis = (
        '<title type="main">Romans</title><div type="x-p" sID="1"/><w lemma="a">Christ</w>,'
        '<note placement="foot">“Christ” means “Anointed One”.</note><w>called</w> to be '
        '<note>x</note>an apostle.<div type="x-p" eID="1"/>'
    )
    assert english_corpus.normalise(english_corpus.osis_to_text(osis)) == "Romans\n\nChrist, called to be an apostle.\n"


def test_sword_entries_reads_blocks_in_verse_order_and_linked_entries_once():
    blocks = [b"In the beginning.", b"Second block."]
    compressed = [zlib.compress(b) for b in blocks]
    offsets = [0, len(compressed[0])]
    files = {
        "ot.bzs": b"".join(struct.pack("<III", o, len(c), len(b)) for o, c, b in zip(offsets, compressed, blocks)),
        "ot.bzz": b"".join(compressed),
        # (block, start, size) with a uint16 size, as zText has: an empty entry, a link to the same bytes
        "ot.bzv": b"".join(
            struct.pack("<IIH", *entry) for entry in [(0, 0, 0), (0, 0, 6), (0, 7, 10), (0, 7, 10), (1, 0, 13)]
        ),
    }
    assert list(english_corpus.sword_entries(files, "b", 2)) == [(0, "In the"), (0, "beginning."), (1, "Second block.")]


def make_deb(path: Path, files: dict[str, bytes]) -> Path:
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = b"!<arch>\n"
    for name, data in (("debian-binary", b"2.0\n"), ("data.tar.xz", tar_bytes.getvalue())):
        archive += (
            f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)
        )
    path.write_bytes(archive)
    return path


def test_html_documents_keep_prose_and_drop_code_and_boilerplate(tmp_path):
    footer = "<p>This page is licensed under the Python Software Foundation License Version 2 here.</p>"
    prose = "<p>The tutorial introduces the reader informally to the basic concepts and features of the language.</p>"
    pages = {
        f"usr/share/doc/html/tutorial/page{i}.html": f"<html><head><title>T</title></head><body>{prose.replace('tutorial', f'chapter {i}')}"
        f"<pre>for x in range(10): print(x)</pre><p>Short.</p>{footer}</body></html>".encode()
        for i in range(3)
    }
    deb = make_deb(tmp_path / "doc.deb", pages)
    documents = dict(english_corpus.html_documents(deb, "usr/share/doc/html/", ("tutorial/",), "docs"))
    assert documents["docs/tutorial-page1"] == (
        "The chapter 1 introduces the reader informally to the basic concepts and features of the language.\n"
    )


def test_out_dir_that_the_script_did_not_write_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(english_corpus.CorpusError, match="not written by this script"):
        english_corpus.check_out_dir(tmp_path)
    english_corpus.check_out_dir(tmp_path / "new")  # a new directory is fine
