"""Rebuild the two binary documents of the sample knowledge base.

Creates:
  docs/warranty_and_rma_terms.docx               (python-docx)
  docs/quarterly_operations_report_2024_q3.pdf   (matplotlib PdfPages)

Usage:  /tmp/venv/bin/python sample_kb/make_binary_docs.py
The content is fictional (Kestrava Coldwing Co., Ltd.).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parent / "docs"

# ---------------------------------------------------------------------------
# Content. Each document is a title plus a list of (heading, [paragraphs]).
# A paragraph starting with "- " is rendered as a bullet.
# ---------------------------------------------------------------------------

WARRANTY_TITLE = "Warranty and RMA Terms"
WARRANTY_SUBTITLE = (
    "Commercial terms KC-COM-520, revision 4, effective 1 January 2025. "
    "Owner: Customer Support and Repair Centre, Shenzhen."
)
WARRANTY = [
    (
        "1. Scope",
        [
            "These terms apply to Kestrava Coldwing hardware sold to customers: "
            "aircraft, CryoPods, batteries and Nestbox docking stations. Aircraft "
            "flown by Kestrava under a service contract are maintained by Kestrava "
            "and are not covered by these terms.",
        ],
    ),
    (
        "2. Warranty periods",
        [
            "The warranty period starts on the delivery date shown on the delivery note.",
            "- Tern T6, Tern T12 and Albatross A40 aircraft: 24 months or 1,200 flight hours, whichever comes first.",
            "- CryoPods (CP-3, CP-5A, CP-D): 36 months.",
            "- Battery packs (BP-880, BP-1650, BP-2400): 12 months or 300 cycles, whichever comes first.",
            "- Nestbox NB-2 and NB-2X: 36 months; the NB-2X heater element is covered for 60 months.",
            "- Consumables such as propellers, PCM bricks, door seals and filters: "
            "90 days, for manufacturing defects only.",
            "A part repaired or replaced under warranty is covered for 6 months or for "
            "the rest of the original warranty, whichever is longer.",
        ],
    ),
    (
        "3. What is not covered",
        [
            "- Crash damage, hard landings and parachute landings.",
            "- Damage caused by flying outside the published weather minimums, as shown in the flight logs.",
            "- Aircraft running firmware not released by Kestrava, or with a modified FlightCore or NestOS.",
            "- Use of third-party PCM bricks or third-party batteries.",
            "- Salt corrosion on aircraft operated within 5 km of the sea when the "
            "KX-8801 anti-corrosion coating was not applied every 30 days.",
            "- Normal wear, cosmetic scratches and faded paint.",
        ],
    ),
    (
        "4. How to request an RMA",
        [
            "A Return Merchandise Authorisation (RMA) must be requested before any item "
            "is shipped back. Items sent without an RMA number are returned unopened at "
            "the customer's cost.",
            "- Open a warranty case in the PartsDesk portal and describe the fault.",
            "- Attach the SkyLedger flight log export for aircraft, or the BMS report for batteries.",
            "- PartsDesk issues an RMA number in the format RMA-SZX-YYYY-NNNNN, for example RMA-SZX-2025-00318.",
            "- Ship the item to the Repair Centre in Shenzhen within 21 days of the RMA "
            "being issued; after 21 days the RMA expires.",
            "- Batteries must be shipped at no more than 30 % state of charge, by road or sea only.",
        ],
    ),
    (
        "5. Repair turnaround",
        [
            "The Repair Centre aims to repair or replace warranty items within 10 "
            "business days of receipt. If no fault is found, an evaluation fee of USD "
            "150 is charged and the item is returned.",
        ],
    ),
    (
        "6. Advance replacement",
        [
            "Customers with a Redline service contract or a Coldwing Corridor "
            "subscription can ask for advance replacement. Kestrava ships a replacement "
            "unit within 2 business days. The faulty unit must reach the Repair Centre "
            "within 15 days of the replacement being delivered; otherwise the "
            "replacement is invoiced at list price.",
        ],
    ),
    (
        "7. Liability",
        [
            "Kestrava's liability under the warranty is limited to repair or "
            "replacement of the faulty item. Kestrava is not liable for the value of "
            "cargo lost in hardware sold to and operated by a customer.",
        ],
    ),
    (
        "8. Contact",
        [
            "Warranty questions: warranty@kestrava.example. Repair Centre opening hours: "
            "Monday to Saturday, 08:30 to 18:00 China Standard Time.",
        ],
    ),
]

REPORT_TITLE = "Quarterly Operations Report - Q3 2024"
REPORT_SUBTITLE = (
    "Kestrava Coldwing Co., Ltd. Period covered: 1 July to 30 September 2024. "
    "Prepared by the Strategy and Planning Office, Seoul, 21 October 2024. "
    "Internal - do not distribute outside the company."
)
REPORT = [
    (
        "1. Summary",
        [
            "Q3 2024 was our busiest quarter so far. We flew 48,212 commercial flights, "
            "up from 44,030 in Q2 2024. Revenue reached USD 11.8 million, 14 % higher "
            "than in Q2. On-time dispatch was 97.4 % against a target of 97.0 %.",
            "On 19 August 2024 the company flew its one-millionth commercial flight, on the Split to Vis route.",
        ],
    ),
    (
        "2. Flights by base",
        [
            "- Seoul (SEL): 17,940 flights",
            "- Split (SPU): 11,383 flights",
            "- Osaka (OSA): 8,115 flights",
            "- Shenzhen (SZX): 6,402 flights",
            "- Ulaanbaatar (ULN): 4,372 flights",
            "Split grew fastest, +31 % compared with Q2, driven by the summer island "
            "season and the new Vis corridor that opened on 2 July 2024.",
        ],
    ),
    (
        "3. Cold chain quality",
        [
            "- TEX-2 rate: 0.41 % of consignments.",
            "- TEX-3 rate: 0.06 % of consignments (29 consignments rejected).",
            "- Average PXA acknowledgement time at the Cold Chain Desk: 1 minute 48 seconds.",
            "Most TEX-3 events happened in July at Shenzhen and Osaka during heat waves. "
            "From 15 August, ground holds in direct sun were limited to 8 minutes at all "
            "bases.",
        ],
    ),
    (
        "4. Safety",
        [
            "- S3 incidents: 2 (one parachute deployment after a motor failure in Seoul, "
            "one forced landing on Brač island after an E-PW-162).",
            "- S4 incidents: 0.",
            "- FROST audit score, company average: 98.6 %.",
        ],
    ),
    (
        "5. Fleet",
        [
            "On 30 September 2024 the operational fleet was 212 Tern T6, 96 Tern T12 and "
            "14 Albatross A40 aircraft. Fleet availability averaged 93.2 %. "
            "FlightCore 7.2 was released to the whole fleet on 9 September 2024.",
        ],
    ),
    (
        "6. Customers",
        [
            "We signed 23 new contracts in the quarter, bringing active customers to 318. "
            "The largest new contract is a Coldwing Corridor for a hospital group in "
            "Osaka covering three sites.",
        ],
    ),
    (
        "7. Outlook for Q4 2024",
        [
            "- Target: 52,000 flights.",
            "- Install 12 Nestbox NB-2X docks at the Ulaanbaatar base before 15 December.",
            "- Start the new Shenzhen Line 4 for Tern T12 production in November.",
            "- Reduce the TEX-3 rate to 0.04 % or lower.",
        ],
    ),
]


def build_docx(path: Path) -> None:
    from docx import Document
    from docx.shared import Pt

    doc = Document()
    doc.core_properties.title = WARRANTY_TITLE
    doc.core_properties.author = "Kestrava Coldwing (fictional)"
    doc.add_heading(WARRANTY_TITLE, level=0)
    p = doc.add_paragraph(WARRANTY_SUBTITLE)
    p.runs[0].italic = True
    for heading, paras in WARRANTY:
        doc.add_heading(heading, level=1)
        for para in paras:
            if para.startswith("- "):
                doc.add_paragraph(para[2:], style="List Bullet")
            else:
                doc.add_paragraph(para)
    for style_name in ("Normal", "List Bullet"):
        doc.styles[style_name].font.size = Pt(11)
    doc.save(str(path))


def build_pdf(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    # TrueType (Type 42) fonts keep the text extractable by PDF parsers.
    matplotlib.rcParams["pdf.fonttype"] = 42
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    # Lay out lines first: (text, size, weight, indent)
    lines: list[tuple[str, float, str, float]] = []
    lines.append((REPORT_TITLE, 16, "bold", 0.0))
    lines.append(("", 6, "normal", 0.0))
    for wrapped in textwrap.wrap(REPORT_SUBTITLE, 95):
        lines.append((wrapped, 9, "normal", 0.0))
    for heading, paras in REPORT:
        lines.append(("", 6, "normal", 0.0))
        lines.append((heading, 12, "bold", 0.0))
        for para in paras:
            bullet = para.startswith("- ")
            text = para[2:] if bullet else para
            wrapped = textwrap.wrap(text, 88 if bullet else 92)
            for i, w in enumerate(wrapped):
                if bullet:
                    lines.append((("\u2022 " if i == 0 else "   ") + w, 10, "normal", 0.02))
                else:
                    lines.append((w, 10, "normal", 0.0))

    top, bottom, left = 0.94, 0.06, 0.08
    with PdfPages(str(path)) as pdf:
        info = pdf.infodict()
        info["Title"] = REPORT_TITLE
        info["Author"] = "Kestrava Coldwing (fictional)"
        page_no = 0

        def new_page():
            nonlocal page_no
            page_no += 1
            fig = plt.figure(figsize=(8.27, 11.69))  # A4 portrait
            fig.text(
                0.5, 0.03, f"Kestrava Coldwing - Q3 2024 report - page {page_no}", ha="center", fontsize=8, color="grey"
            )
            return fig

        fig = new_page()
        y = top
        for text, size, weight, indent in lines:
            step = size * 1.45 / (11.69 * 72)
            if y - step < bottom:
                pdf.savefig(fig)
                plt.close(fig)
                fig = new_page()
                y = top
            if text:
                fig.text(left + indent, y, text, fontsize=size, fontweight=weight, va="top", family="DejaVu Sans")
            y -= step
        pdf.savefig(fig)
        plt.close(fig)


def main() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    build_docx(DOCS / "warranty_and_rma_terms.docx")
    build_pdf(DOCS / "quarterly_operations_report_2024_q3.pdf")
    print("wrote", DOCS / "warranty_and_rma_terms.docx")
    print("wrote", DOCS / "quarterly_operations_report_2024_q3.pdf")


if __name__ == "__main__":
    main()
