"""reStructuredText, CSV, Excel and PowerPoint: structure kept for the sentence picker, markup stripped, the
location kept for citations, and hostile files refused in one sentence within the reading bounds."""

from __future__ import annotations

import io
import time
import zipfile

import pytest

from rag.errors import IngestError
from rag.readers import read_sections
from rag.readers.bounded import ReadBounds, read_sections_bounded

RST = b"""Widget Tool
===========

Install
-------

Install it with pip; the package is called ``widget-tool``:

.. code-block:: console

   pip install widget-tool

Options
-------

-o FILE, --output FILE   Write the result to FILE instead of stdout.
-q                       Say nothing.

.. list-table:: Limits
   :header-rows: 1

   * - Setting
     - Default
   * - timeout
     - 30 s
   * - retries
     - 3

See the `project page <https://example.org/widget>`_ for more.

.. _unused-target: https://example.org/hidden
"""


def test_rst_keeps_code_options_and_table_rows_with_their_header_and_drops_markup() -> None:
    sections, _ = read_sections("tool.rst", RST)
    by_heading = {s.heading: s.text for s in sections}
    assert set(by_heading) == {"Install", "Options"}
    install = by_heading["Install"]
    assert "```\npip install widget-tool\n```" in install  # a code block stays one fenced unit
    assert "``" not in install.replace("```", "")  # inline literal markup stripped
    options = by_heading["Options"]
    assert "- -o FILE, --output FILE: Write the result to FILE instead of stdout." in options
    assert "- Setting: timeout; Default: 30 s" in options  # a row with its header
    assert "project page" in options and "https://example.org" not in options  # link text, not its target


def test_rst_never_follows_include_or_raw_directives(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    hostile = (
        f"Title\n=====\n\n.. include:: {secret}\n\n.. raw:: html\n   :file: {secret}\n\n"
        f".. csv-table:: x\n   :file: {secret}\n\n.. raw:: html\n\n   <script>alert(1)</script>\n\nThe body.\n"
    ).encode()
    sections, _ = read_sections("hostile.rst", hostile)
    text = " ".join(s.text for s in sections)
    assert "TOP-SECRET" not in text and "script" not in text and "The body." in text


def test_csv_rows_carry_their_header_and_cite_their_rows() -> None:
    data = "version;codename;release\n" + "".join(f"{i}.0;Name{i};199{i % 10}-01-01\n" for i in range(1, 90))
    sections, _ = read_sections("releases.csv", data.encode())
    assert [s.place for s in sections] == ["rows 2-41", "rows 42-81", "rows 82-90"]
    assert sections[0].text.splitlines()[0] == "- version: 1.0; codename: Name1; release: 1991-01-01"


def test_a_csv_of_a_million_rows_is_refused_in_seconds() -> None:
    started = time.perf_counter()
    with pytest.raises(IngestError, match="more than 100,000 rows"):
        read_sections_bounded("huge.csv", b"a,b\n" + b"1,2\n" * 1_000_000, ReadBounds())
    assert time.perf_counter() - started < 20


def _xlsx() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Prices"
    sheet.append(["Part", "Name", "Price (EUR)"])
    sheet.append(["KX-4471", "main bearing seal", 120])
    sheet.append(["KX-4472", "rotor clamp", 35.5])
    other = book.create_sheet("Staff")
    other.append(["Site", "Headcount"])
    other.append(["Busan", 42])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_reads_every_sheet_row_by_row_with_sheet_and_rows_as_location() -> None:
    sections, _ = read_sections_bounded("parts.xlsx", _xlsx(), ReadBounds())
    assert [(s.place, s.text) for s in sections] == [
        (
            "sheet Prices, rows 2-3",
            "- Part: KX-4471; Name: main bearing seal; Price (EUR): 120\n"
            "- Part: KX-4472; Name: rotor clamp; Price (EUR): 35.5",
        ),
        ("sheet Staff, row 2", "- Site: Busan; Headcount: 42"),
    ]


def _pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Quarterly results"
    slide.placeholders[1].text_frame.text = "Revenue grew 12% to 4.1 million."
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    for (r, c), text in {(0, 0): "Region", (0, 1): "Orders", (1, 0): "Busan", (1, 1): "310"}.items():
        table.cell(r, c).text = text
    slide.notes_slide.notes_text_frame.text = "Mention the Busan launch."
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_pptx_gives_one_section_per_slide_with_its_title_table_rows_and_notes() -> None:
    sections, _ = read_sections_bounded("results.pptx", _pptx(), ReadBounds())
    assert len(sections) == 1
    slide = sections[0]
    assert (slide.heading, slide.place) == ("Quarterly results", "slide 1")
    assert slide.text.splitlines() == [
        "Revenue grew 12% to 4.1 million.",
        "- Region: Busan; Orders: 310",
        "Mention the Busan launch.",
    ]


def _bomb(member: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(member, b"<a>" + b" " * (80 * 2**20) + b"</a>")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "sentence"),
    [
        ("bomb.pptx", _bomb("ppt/slides/slide1.xml"), "unpacks to 80 MB"),
        ("bomb.xlsx", _bomb("xl/worksheets/sheet1.xml"), "unpacks to 80 MB"),
        ("broken.xlsx", b"PK\x03\x04 not really a zip", "could not be read as an Excel workbook"),
        ("broken.pptx", _xlsx(), "could not be read as a PowerPoint presentation"),
        ("empty.csv", b"", "empty"),
        ("wide.csv", b"a,b\n" + b"x" * 200_000 + b",1\n", "could not be read as CSV"),
    ],
)
def test_hostile_or_broken_tables_and_decks_get_one_sentence(name: str, data: bytes, sentence: str) -> None:
    with pytest.raises(IngestError, match=sentence) as caught:
        read_sections_bounded(name, data, ReadBounds())
    assert name in str(caught.value) and "\n" not in str(caught.value)
