"""What a notebook shows so that the PDF build (`assignment3.pdf`) can number and collect it:
figures as SVG with a caption, tables with a caption, and the section's headline numbers with
the record of when, where and by which code version the notebook was executed."""
import datetime
import io
import statistics

import matplotlib.pyplot as plt

from .compute import describe
from .runfile import code_version, machine
from .plots import markdown_table

#: Output metadata key marking a captioned figure ({"figure": caption}) or the caption line the
#: notebook shows under it ({"caption": True}, left out of the PDF, which numbers the figure).
KEY = "assignment3"
#: The MIME type of a section's headline numbers (a dict, see `publish_headlines`).
HEADLINES = "application/vnd.assignment3.headlines+json"
SUMMARY_COLUMNS = ("quantity", "ours", "student report", "course reference")


def _display(data, metadata=None):
    from IPython.display import publish_display_data
    publish_display_data(data, metadata=metadata)


def figure_svg(fig):
    """The SVG text of `fig`, the same bytes for the same figure (no date, fixed ids)."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "assignment3", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def show_figure(fig, caption):
    """Show `fig` as SVG with `caption` in italics under it, and close it. The PDF turns the
    pair into one numbered figure with that caption."""
    svg = figure_svg(fig)
    plt.close(fig)
    _display({"image/svg+xml": svg, "text/plain": f"Figure: {caption}"},
             {KEY: {"figure": caption}})
    _display({"text/markdown": f"*Figure: {caption}*", "text/plain": f"Figure: {caption}"},
             {KEY: {"caption": True}})


def table_markdown(rows, caption, columns=None, formats=None):
    """A Markdown table (`plots.markdown_table`) headed by its caption line "Table: ...", which
    a notebook shows as a line above the table and pandoc makes a numbered table caption."""
    return f"Table: {caption}\n\n{markdown_table(rows, columns, formats)}"


def show_table(rows, caption, columns=None, formats=None):
    """Show `rows` (a list of dicts) as a table with `caption` (see `table_markdown`)."""
    text = table_markdown(rows, caption, columns, formats)
    _display({"text/markdown": text, "text/plain": text})


def headline(quantity, ours, fmt=".2f", student="", course=""):
    """One headline number: `ours` is a number or a list of one number per seed (shown as
    mean ± sd); `student` and `course` are the references (a number, formatted like ours, or a
    text such as "about 1e-10"; "" for none)."""
    ours = [float(v) for v in ours] if isinstance(ours, (list, tuple)) else float(ours)
    return {"quantity": quantity, "ours": ours, "fmt": fmt, "student": student, "course": course}


def format_ours(row):
    """Our value of a headline row as text: "v", or "mean ± sd (n seeds)" for several seeds."""
    ours, fmt = row["ours"], row["fmt"]
    if not isinstance(ours, list):
        return format(ours, fmt)
    if len(ours) == 1:
        return format(ours[0], fmt)
    return (f"{format(statistics.mean(ours), fmt)} ± {format(statistics.stdev(ours), fmt)} "
            f"({len(ours)} seeds)")


def _reference(value, fmt):
    return format(value, fmt) if isinstance(value, (int, float)) else str(value)


def summary_rows(sections):
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


def execution_record():
    """When, with which code version and on which machine this notebook is executed."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "code_version": code_version(), "machine": describe(machine())}


def publish_headlines(section, title, rows):
    """Show this section's headline numbers (`headline` rows) as a table, and publish them with
    the execution record for the report's summary. `section` is the section number."""
    published = {"section": section, "title": title, "rows": rows,
                 "executed": execution_record()}
    text = table_markdown(summary_rows([published]), f"Headline numbers of section {section}",
                          columns=SUMMARY_COLUMNS)
    _display({HEADLINES: published, "text/markdown": text, "text/plain": text})
