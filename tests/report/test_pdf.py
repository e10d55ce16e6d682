"""The PDF report. Without typesetting: the checks of a notebook, what a reader keeps of its
outputs, the title block and the summary, the Markdown of a small notebook built here. Slow:
the report built from the committed notebooks by the real build script (nbconvert, pandoc and
Typst from PyPI), read back with pypdf; a broken notebook stops it with a clear message; the
nbconvert exporter's PDF of a small notebook."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat", reason="the report extra is missing")
pytest.importorskip("nbconvert", reason="the report extra is missing")

from assignment3.report.paper import HEADLINES, KEY, format_ours, headline  # noqa: E402
from assignment3.report.pdf import (  # noqa: E402
    TITLE,
    WIDGET,
    NotebookError,
    ReaderOutputs,
    check_executed,
    report_markdown,
    summary_markdown,
    title_block,
)

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(REPO.glob("notebooks/[0-9]*.ipynb"))
BUILD = [sys.executable, str(REPO / "report" / "build_pdf.py")]
SVG = ('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       '<rect width="10" height="10"/></svg>')


def normal(text):
    """Text with typographic quotes made plain and every run of whitespace one space."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


def outputs(paths):
    for path in paths:
        for cell in nbformat.read(path, as_version=4).cells:
            yield from cell.get("outputs", [])


def notebook(cells):
    """A notebook of (markdown or code source, outputs) cells (outputs None: a markdown cell),
    as if executed."""
    nb = nbformat.v4.new_notebook()
    for count, (source, outs) in enumerate(cells, 1):
        if outs is None:
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source, outputs=outs,
                                                      execution_count=count))
    return nb


def executed_notebook(path, cells):
    """Write `notebook(cells)` to path."""
    nbformat.write(notebook(cells), path)
    return path


def published(section, date="2025-01-02 10:00 UTC", version="ab" * 20,
              machine_line="a CPU, 2 cores"):
    """The headline output of a section, as paper.publish_headlines shows it."""
    rows = [headline(f"accuracy of section {section} (%)", [50.0 + section, 52.0 + section],
                     student=51.5)]
    return {"section": section, "title": f"Section {section}", "rows": rows,
            "executed": {"date": date, "code_version": version, "machine": machine_line}}


def bar_and_widget():
    bar = "epoch 3/20: 15%|###       | 300/2000 [00:01<00:07]"
    return [nbformat.v4.new_output("stream", name="stderr", text=bar + "\r"),
            nbformat.v4.new_output("display_data", {
                WIDGET: {"model_id": "a1"},
                "text/plain": "HBox(children=(FloatProgress(value=0.0)))"}),
            nbformat.v4.new_output("stream", name="stdout", text="final loss 1.25\n")]


def figure_outputs(caption):
    """The two outputs of paper.show_figure: the SVG with its caption, the caption line."""
    return [nbformat.v4.new_output("display_data", {"image/svg+xml": SVG,
                                                    "text/plain": f"Figure: {caption}"},
                                   metadata={KEY: {"figure": caption}}),
            nbformat.v4.new_output("display_data", {"text/markdown": f"*Figure: {caption}*",
                                                    "text/plain": f"Figure: {caption}"},
                                   metadata={KEY: {"caption": True}})]


def headline_output(section):
    text = f"Table: Headline numbers of section {section}"
    return nbformat.v4.new_output("display_data", {HEADLINES: published(section),
                                                   "text/markdown": text, "text/plain": text})


# ---------------------------------------------------------------------------------------------
# Without typesetting


def broken(nb, fault):
    """`nb` with its third cell made `fault`: "not executed" or "error output"."""
    if fault == "not executed":
        nb.cells[2].execution_count = None
    else:
        nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="ValueError",
                                                      evalue="lam must be >= 0", traceback=[])]
    return nb


#: The faults of a notebook that stop the report, and the refusal, naming notebook and cell.
FAULTS = {"not executed": r"a.ipynb, cell 3 \('train\(\)'\) was not executed; execute the "
                          r"notebook",
          "error output": r"a.ipynb, cell 3 \('train\(\)'\) holds an error output \(ValueError: "
                          r"lam must be >= 0\); fix it and re-execute"}


def test_a_notebook_not_executed_or_with_an_error_is_refused():
    def small():
        return notebook([("# Title", None), ("x = 1", []), ("train()\nmore()", []), ("", [])])

    nb = small()
    nb.cells[3].execution_count = None                # an empty cell needs no execution
    check_executed(nb, "a.ipynb")
    for fault, message in FAULTS.items():
        with pytest.raises(NotebookError, match=message):
            check_executed(broken(small(), fault), "a.ipynb")


def test_report_markdown_checks_then_joins_the_cells_in_order():
    first, second = notebook([("# One", None)]), notebook([("# Two", None), ("x", [])])
    markdown, _ = report_markdown({"1.ipynb": first, "2.ipynb": second}, title="A report")
    assert markdown.index("# One") < markdown.index("# Two")
    assert "title" not in first.metadata
    nb = broken(notebook([("# Title", None), ("x = 1", []), ("train()", [])]), "error output")
    with pytest.raises(NotebookError, match=FAULTS["error output"]):
        report_markdown({"first.ipynb": notebook([("y = 2", [])]), "a.ipynb": nb})


def test_reader_keeps_what_a_reader_needs():
    """Progress bars (stderr), widgets and the caption lines go; a figure becomes a Markdown
    figure of its extracted file; the headline numbers move to the resources."""
    nb = notebook([("train()", bar_and_widget()),
                   ("show()", figure_outputs("Loss by step")),
                   ("publish()", [headline_output(2)])])
    nb.cells[1].outputs[0].metadata["filenames"] = {"image/svg+xml": "output_1_0.svg"}
    nb, resources = ReaderOutputs().preprocess(nb, {})
    first, second, third = (cell.outputs for cell in nb.cells)
    assert [(o.output_type, o.get("name")) for o in first] == [("stream", "stdout")]
    assert len(second) == 1
    assert second[0].data == {"text/markdown": "![Loss by step](output_1_0.svg)"}
    assert third == [] and resources["headlines"] == [published(2)]


def test_title_block_says_when_where_and_by_which_code():
    assert "date" not in title_block([]) and title_block([])["title"] == TITLE
    meta = title_block([published(1, "2025-01-02 10:00 UTC"),
                        published(2, "2025-01-01 09:00 UTC", version="cd" * 20 + "+changes"),
                        published(3, "2025-01-02 10:00 UTC")], title="Mine")
    assert meta["title"] == "Mine"
    assert meta["date"] == ("Notebooks executed 2025-01-01 09:00 UTC to 2025-01-02 10:00 UTC\\\n"
                            f"code version `{'ab' * 6}`, `{'cd' * 6}+changes`\\\n"
                            "on a CPU, 2 cores")
    assert title_block([published(1)])["date"].startswith(
        "Notebooks executed 2025-01-02 10:00 UTC\\\n")


def test_summary_holds_every_headline_in_section_order():
    assert summary_markdown([]) == ""
    text = summary_markdown([published(3), published(1)])
    assert text.startswith("# Summary {.unnumbered}\n\nTable: Headline numbers of every section")
    assert text.index("**1 Section 1**") < text.index("**3 Section 3**")
    for section in (1, 3):
        assert format_ours(published(section)["rows"][0]) in text


def test_report_markdown_of_a_small_notebook():
    """The whole Markdown route but the typesetting: title block, summary, contents, the
    headings and kept outputs, no code, no progress bar, the figure in the files."""
    nb = notebook([("# Training with a bar", None),
                   ("import numpy\ntrain()", bar_and_widget()),
                   ("show()", figure_outputs("Loss by step")),
                   ("publish()", [headline_output(2)])])
    markdown, files = report_markdown({"small.ipynb": nb}, title="A small report")
    front = json.loads(markdown.split("\n---\n")[0].removeprefix("---\n"))
    assert front["title"] == "A small report" and "2025-01-02 10:00 UTC" in front["date"]
    assert "# Summary {.unnumbered}" in markdown and "#outline(depth: 2)" in markdown
    assert "# Training with a bar" in markdown and "final loss 1.25" in markdown
    assert "15%" not in markdown and "HBox" not in markdown and "import numpy" not in markdown
    image = re.search(r"!\[Loss by step\]\((.+?\.svg)\)", markdown).group(1)
    assert SVG.encode() in (files[image] if isinstance(files[image], bytes)
                            else files[image].encode())
    assert "*Figure: Loss by step*" not in markdown


# ---------------------------------------------------------------------------------------------
# The PDF itself (slow: pandoc and Typst)


def build(notebooks, output):
    return subprocess.run([*BUILD, *map(str, notebooks), "--output", str(output)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pypdf():
    pytest.importorskip("typst", reason="the report extra (pip install -e '.[report]') is missing")
    return pytest.importorskip("pypdf")


@pytest.fixture(scope="module")
def report_pdf(tmp_path_factory, pypdf):
    """The report built from the committed notebooks: its path."""
    output = tmp_path_factory.mktemp("report") / "report.pdf"
    done = build(NOTEBOOKS, output)
    assert done.returncode == 0, done.stderr
    return output


@pytest.fixture(scope="module")
def report(report_pdf, pypdf):
    """The report built from the committed notebooks: (pypdf reader, normalised text)."""
    reader = pypdf.PdfReader(report_pdf)
    return reader, normal("\n".join(page.extract_text() for page in reader.pages))


@pytest.mark.slow
def test_report_has_every_section_title(report):
    _, text = report
    titles = [line.lstrip("#").strip() for path in NOTEBOOKS
              for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"
              for line in cell.source.splitlines() if line.startswith("#")]
    assert len(titles) >= len(NOTEBOOKS)
    for title in titles:
        assert normal(title) in text, title


@pytest.mark.slow
def test_report_has_every_caption_numbered(report):
    _, text = report
    figures = [o.metadata[KEY]["figure"] for o in outputs(NOTEBOOKS)
               if "figure" in o.get("metadata", {}).get(KEY, {})]
    tables = [line.removeprefix("Table: ") for o in outputs(NOTEBOOKS)
              if "text/markdown" in o.get("data", {}) and HEADLINES not in o.data
              for line in o.data["text/markdown"].splitlines() if line.startswith("Table: ")]
    assert figures and tables
    for number, caption in enumerate(figures, 1):
        assert f"Figure {number}: {normal(caption)}" in text, caption
    for caption in tables:
        assert re.search(rf"Table \d+: {re.escape(normal(caption))}", text), caption


@pytest.mark.slow
def test_summary_holds_every_headline_number_of_the_notebooks(report):
    _, text = report
    headlines = [o.data[HEADLINES] for o in outputs(NOTEBOOKS) if HEADLINES in o.get("data", {})]
    assert sorted(h["section"] for h in headlines) == list(range(1, len(NOTEBOOKS) + 1))
    summary = text[text.index("Summary"):text.index("Contents")]
    for row in (row for h in headlines for row in h["rows"]):
        assert format_ours(row) in summary, row


@pytest.mark.slow
def test_report_is_a_paper_without_code_or_checks(report):
    reader, text = report
    assert reader.metadata.title == TITLE
    assert len(NOTEBOOKS) + 1 < len(reader.pages) <= 40
    assert "assert" not in text and "import " not in text and "Traceback" not in text
    executed = [o.data[HEADLINES]["executed"] for o in outputs(NOTEBOOKS)
                if HEADLINES in o.get("data", {})]
    assert executed[0]["code_version"][:12] in text and normal(executed[0]["machine"]) in text


@pytest.mark.slow
def test_report_figures_are_vector_and_fonts_embedded(report):
    reader, _ = report
    fonts = {}
    for page in reader.pages:
        assert not page.images, "a raster image in the PDF"
        for font in page["/Resources"].get("/Font", {}).values():
            font = font.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                fonts[font["/BaseFont"]] = descendant.get_object()["/FontDescriptor"]
    assert fonts
    for name, descriptor in fonts.items():
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor), name


@pytest.mark.slow
def test_broken_notebook_stops_the_build_naming_notebook_and_cell(tmp_path, pypdf):
    """The build script reaches the check (each fault's message: above), says so in one line
    and writes nothing."""
    nb = nbformat.read(NOTEBOOKS[1], as_version=4)
    number, cell = next((i, c) for i, c in enumerate(nb.cells, 1) if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("error", ename="ValueError",
                                           evalue="lam must be >= 0", traceback=[])]
    path = tmp_path / NOTEBOOKS[1].name
    nbformat.write(nb, path)
    output = tmp_path / "report.pdf"
    done = build([NOTEBOOKS[0], path], output)
    assert done.returncode == 2
    assert str(path) in done.stderr and f"cell {number} " in done.stderr
    assert "lam must be >= 0" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert not output.exists()


@pytest.mark.slow
def test_nbconvert_exporter_writes_the_pdf_of_one_notebook(tmp_path, pypdf):
    """`jupyter nbconvert --to a3pdf`: the notebook's text and its numbered figure, without
    its progress bars and widgets."""
    path = executed_notebook(tmp_path / "bars.ipynb", [("# Training with a bar", None),
                                                       ("train()", bar_and_widget()),
                                                       ("show()", figure_outputs("Loss by step"))])
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "a3pdf",
                           "--output-dir", str(tmp_path), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = normal("".join(p.extract_text() for p in pypdf.PdfReader(tmp_path / "bars.pdf").pages))
    assert "Training with a bar" in text and "final loss 1.25" in text
    assert "Figure 1: Loss by step" in text
    assert "15%" not in text and "HBox" not in text


def test_build_refuses_what_cannot_make_a_pdf_in_one_line(tmp_path, capsys):
    """The build script, in this process (its real command: above): an output that is not a
    PDF (store.outputs, tested there for every kind of file) or in a folder that does not
    exist, and files that are not notebooks: one line, exit status 2, nothing written."""
    spec = importlib.util.spec_from_file_location("build_pdf", REPO / "report" / "build_pdf.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    (tmp_path / "notes.pdf").write_text("my notes\n")
    (tmp_path / "json.ipynb").write_text('{"cells": 1}')
    (tmp_path / "binary.ipynb").write_bytes(bytes(range(256)))
    bad = nbformat.read(NOTEBOOKS[0], as_version=4)
    next(c for c in bad.cells if c.cell_type == "code").outputs = [{"output_type": "bogus"}]
    (tmp_path / "bad.ipynb").write_text(json.dumps(bad))
    ok, pdf = NOTEBOOKS[0], tmp_path / "report.pdf"
    cases = {(ok, tmp_path / "notes.pdf"): "is a file that assignment3 did not write, not a PDF",
             (ok, tmp_path / "no" / "r.pdf"): "does not exist; create it first",
             (tmp_path / "json.ipynb", pdf): "json.ipynb is not a valid Jupyter notebook",
             (tmp_path / "binary.ipynb", pdf): "binary.ipynb is not a valid Jupyter notebook",
             (tmp_path / "bad.ipynb", pdf): "bad.ipynb is not a valid Jupyter notebook"}
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for (notebook, out), what in cases.items():
        with pytest.raises(SystemExit) as stop:
            script.main([str(notebook), "--output", str(out)])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith("error: ") and what in err, err
        assert err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


#: At most this many pages: the report (title block, summary, contents, six sections with their
#: figures and tables) fits in about 12 A4 pages when sections run on and figures are grouped
#: into panels; more means white space or repeated content to look at again.
MAX_PAGES = 16                  # part four (issue 29) in progress: back to at most 15 when it ends
#: The page's margins (pdf.title_block: 2.2 cm of 21 cm left and right, 2.4 cm of 29.7 cm top
#: and bottom), as fractions of the page.
MARGIN_X, MARGIN_Y = 2.2 / 21, 2.4 / 29.7


def page_ink(path, dpi=50):
    """Per page of the PDF at `path`, rendered: (lowest, leftmost, rightmost) ink of the page
    above its footer (the page number), as fractions of its height and width."""
    pdfium = pytest.importorskip("pypdfium2")
    pages = []
    for page in pdfium.PdfDocument(path):
        img = np.asarray(page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L"))
        body = img[:int(img.shape[0] * (1 - MARGIN_Y))] < 200
        rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
        pages.append(((rows[-1] + 1) / img.shape[0], cols[0] / img.shape[1],
                      (cols[-1] + 1) / img.shape[1]) if rows.size else (0.0, 0.5, 0.5))
    return pages


@pytest.mark.slow
def test_pages_are_filled_and_nothing_crosses_the_margins(report_pdf):
    """No page but the last ends before half of it, the report keeps to MAX_PAGES, and no
    figure (with its panels and legend) or table reaches into the margins."""
    pages = page_ink(report_pdf)
    assert len(pages) <= MAX_PAGES, f"{len(pages)} pages"
    half_empty = [number for number, (low, _, _) in enumerate(pages[:-1], 1) if low < 0.5]
    assert not half_empty, f"pages less than half filled: {half_empty}"
    for number, (_, left, right) in enumerate(pages, 1):
        assert left >= MARGIN_X - 0.01 and right <= 1 - MARGIN_X + 0.01, f"page {number}"
