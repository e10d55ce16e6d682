"""Markdown tables for the report."""
from assignment3.plots import markdown_table


def test_markdown_table_formats_and_sizes_columns():
    rows = [{"setting": "a long setting name", "acc (%)": 53.137}, {"setting": "b", "acc (%)": ""}]
    text = markdown_table(rows, formats={"acc (%)": ".2f"})
    assert text.splitlines() == ["| setting | acc (%) |",
                                 "|-----------------------|------------|",
                                 "| a long setting name | 53.14 |",
                                 "| b |  |"]
