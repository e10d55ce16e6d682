"""What a notebook shows so that the PDF build (`report.pdf`) can number and collect it: figures
as SVG with a caption, tables with a caption (the package's one Markdown table writer,
`markdown_table`), and the section's headline numbers with the record of when, where and by which
code version the notebook was executed."""
import datetime
import io
import statistics
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..store.provenance import code_version, describe, machine, unlike_reference

#: Output metadata key marking a captioned figure ({"figure": caption}) or the caption line the
#: notebook shows under it ({"caption": True}, left out of the PDF, which numbers the figure).
KEY = "assignment3"
#: The MIME type of a section's headline numbers (a dict, see `publish_headlines`).
HEADLINES = "application/vnd.assignment3.headlines+json"
SUMMARY_COLUMNS = ("quantity", "ours", "student report", "course reference")


def _display(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
    from IPython.display import publish_display_data
    publish_display_data(data, metadata=metadata)


def figure_svg(fig: Figure) -> str:
    """The SVG text of `fig`, the same bytes for the same figure (no date, fixed ids)."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "assignment3", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def show_figure(fig: Figure, caption: str) -> None:
    """Show `fig` as SVG with `caption` in italics under it, and close it. The PDF turns the
    pair into one numbered figure with that caption."""
    svg = figure_svg(fig)
    plt.close(fig)
    _display({"image/svg+xml": svg, "text/plain": f"Figure: {caption}"},
             {KEY: {"figure": caption}})
    _display({"text/markdown": f"*Figure: {caption}*", "text/plain": f"Figure: {caption}"},
             {KEY: {"caption": True}})


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None,
                   formats: dict[str, str] | None = None, caption: str | None = None) -> str:
    """A Markdown table of `rows` (a list of dicts); `formats` maps a column to a format spec
    such as ".2f" or ".1e". The dashes under each header are as many as the column's longest
    entry (at least 8, at most 40: longer text wraps) plus 4 for the cell's padding: pandoc sizes
    the columns of a wide table in that proportion in the PDF. With a `caption`, the table is
    headed by the line "Table: caption", which a notebook shows above the table and pandoc makes
    a numbered table caption."""
    columns = list(columns or rows[0])
    formats = formats or {}

    def cell(row: dict[str, Any], col: str) -> str:
        value = row.get(col, "")
        return format(value, formats[col]) if col in formats and value != "" else str(value)

    body = [[cell(row, c) for c in columns] for row in rows]
    widths = [min(40, max([8, len(c)] + [len(r[i]) for r in body])) + 4
              for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("-" * w for w in widths) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    table = "\n".join(lines)
    return f"Table: {caption}\n\n{table}" if caption else table


def show_table(rows: list[dict[str, Any]], caption: str, columns: Sequence[str] | None = None,
               formats: dict[str, str] | None = None) -> None:
    """Show `rows` (a list of dicts) as a table with `caption` (see `markdown_table`)."""
    text = markdown_table(rows, columns, formats, caption=caption)
    _display({"text/markdown": text, "text/plain": text})


def headline(quantity: str, ours: float | list[float] | tuple[float, ...], fmt: str = ".2f",
             student: str | float = "", course: str | float = "") -> dict[str, Any]:
    """One headline number: `ours` is a number or a list of one number per seed (shown as
    mean ± sd); `student` and `course` are the references (a number, formatted like ours, or a
    text such as "about 1e-10"; "" for none)."""
    value = [float(v) for v in ours] if isinstance(ours, (list, tuple)) else float(ours)
    return {"quantity": quantity, "ours": value, "fmt": fmt, "student": student, "course": course}


def format_ours(row: dict[str, Any]) -> str:
    """Our value of a headline row as text: "v", or "mean ± sd (n seeds)" for several seeds."""
    ours, fmt = (row["ours"] if isinstance(row["ours"], list) else [row["ours"]]), row["fmt"]
    if len(ours) == 1:
        return format(ours[0], fmt)
    return (f"{format(statistics.mean(ours), fmt)} ± {format(statistics.stdev(ours), fmt)} "
            f"({len(ours)} seeds)")


def _reference(value: object, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else str(value)


def summary_rows(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the summary table for `sections` (a list of published headline dicts): a bold
    row naming each section, then its headline numbers."""
    rows = []
    for s in sections:
        rows.append({"quantity": f"**{s['section']} {s['title']}**"})
        rows += [{"quantity": row["quantity"], "ours": format_ours(row),
                  "student report": _reference(row["student"], row["fmt"]) or "-",
                  "course reference": _reference(row["course"], row["fmt"]) or "-"}
                 for row in s["rows"]]
    return rows


def execution_record() -> dict[str, str]:
    """When, with which code version and on which machine this notebook is executed (and whether
    that machine has the versions of the committed numbers)."""
    here = machine()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "code_version": code_version(), "machine": describe(here) + unlike_reference(here)}


def publish_headlines(section: int, title: str, rows: list[dict[str, Any]]) -> None:
    """Show this section's headline numbers (`headline` rows) as a table, and publish them with
    the execution record for the report's summary. `section` is the section number."""
    published = {"section": section, "title": title, "rows": rows,
                 "executed": execution_record()}
    text = markdown_table(summary_rows([published]), SUMMARY_COLUMNS,
                          caption=f"Headline numbers of section {section}")
    _display({HEADLINES: published, "text/markdown": text, "text/plain": text})
