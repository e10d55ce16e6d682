"""What the notebooks show for the report: Markdown tables with and without a caption, SVG
figures, headline numbers and the summary rows made of them."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from assignment3.report.paper import (  # noqa: E402
    SUMMARY_COLUMNS,
    execution_record,
    figure_svg,
    format_ours,
    headline,
    markdown_table,
    summary_rows,
)
from assignment3.store.provenance import (  # noqa: E402
    code_version,
    describe,
    machine,
    unlike_reference,
)

ROWS = [{"setting": "a long setting name", "acc (%)": 53.137}, {"setting": "b", "acc (%)": ""}]


def test_markdown_table_formats_and_sizes_columns():
    text = markdown_table(ROWS, formats={"acc (%)": ".2f"})
    assert text.splitlines() == ["| setting | acc (%) |",
                                 "|-----------------------|------------|",
                                 "| a long setting name | 53.14 |",
                                 "| b |  |"]


def test_markdown_table_with_a_caption_is_headed_by_it():
    text = markdown_table(ROWS, formats={"acc (%)": ".2f"}, caption="Accuracy per setting")
    assert text == "Table: Accuracy per setting\n\n" + markdown_table(ROWS, formats={
        "acc (%)": ".2f"})


def test_markdown_table_columns_chosen_and_wide_ones_capped():
    rows = [{"a": 1, "b": "x" * 100}, {"a": 2}]
    lines = markdown_table(rows, columns=["b", "a"]).splitlines()
    assert lines[0] == "| b | a |" and lines[1] == "|" + "-" * 44 + "|" + "-" * 12 + "|"
    assert lines[2] == f"| {'x' * 100} | 1 |" and lines[3] == "|  | 2 |"


def test_headline_and_our_value_as_text():
    one = headline("test accuracy (%)", 53.137, student=53.06, course="about 53.5")
    assert one == {"quantity": "test accuracy (%)", "ours": 53.137, "fmt": ".2f",
                   "student": 53.06, "course": "about 53.5"}
    assert format_ours(one) == "53.14"
    assert format_ours(headline("q", [0.5], ".1f")) == "0.5"
    seeds = headline("q", (53.0, 54.0, 55.0), ".2f")
    assert seeds["ours"] == [53.0, 54.0, 55.0]
    assert format_ours(seeds) == "54.00 ± 1.00 (3 seeds)"
    assert format_ours(headline("error", 1.23e-10, ".1e")) == "1.2e-10"


def test_summary_rows_name_each_section_then_its_numbers():
    sections = [{"section": 2, "title": "Three layers", "rows": [
        headline("BN (%)", [53.0, 55.0], student=54.03, course="about 53.5"),
        headline("no BN (%)", 52.5)]}]
    rows = summary_rows(sections)
    assert rows == [{"quantity": "**2 Three layers**"},
                    {"quantity": "BN (%)", "ours": "54.00 ± 1.41 (2 seeds)",
                     "student report": "54.03", "course reference": "about 53.5"},
                    {"quantity": "no BN (%)", "ours": "52.50", "student report": "-",
                     "course reference": "-"}]
    table = markdown_table(rows, SUMMARY_COLUMNS).splitlines()
    assert table[2] == "| **2 Three layers** |  |  |  |"


def test_figure_svg_is_the_same_for_the_same_figure():
    def figure():
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2], label="a line")
        ax.legend()
        return fig

    first, second = figure(), figure()
    try:
        svg = figure_svg(first)
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        assert svg == figure_svg(second)
    finally:
        plt.close(first)
        plt.close(second)


def test_execution_record_names_date_code_and_machine():
    record = execution_record()
    assert record["code_version"] == code_version()
    here = machine()
    assert record["machine"] == describe(here) + unlike_reference(here)
    assert record["date"].endswith(" UTC") and len(record["date"]) == len("2025-01-01 12:00 UTC")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")
