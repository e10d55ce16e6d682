"""The PDF report: built from the committed notebooks by the real build script (nbconvert, pandoc
and Typst from PyPI), read back with pypdf; broken notebooks stop it with a clear message."""
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from assignment3.paper import HEADLINES, KEY, format_ours

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("typst", reason="the report extra (pip install -e '.[report]') is missing")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(REPO.glob("notebooks/[0-9]*.ipynb"))
BUILD = [sys.executable, str(REPO / "report" / "build_pdf.py")]


def normal(text):
    """Text with typographic quotes made plain and every run of whitespace one space."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


def outputs(paths):
    for path in paths:
        for cell in nbformat.read(path, as_version=4).cells:
            yield from cell.get("outputs", [])


def build(notebooks, output):
    return subprocess.run([*BUILD, *map(str, notebooks), "--output", str(output)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report built from the committed notebooks: (pypdf reader, normalised text)."""
    output = tmp_path_factory.mktemp("report") / "report.pdf"
    done = build(NOTEBOOKS, output)
    assert done.returncode == 0, done.stderr
    reader = pypdf.PdfReader(output)
    return reader, normal("\n".join(page.extract_text() for page in reader.pages))


def test_report_has_every_section_title(report):
    _, text = report
    titles = [line.lstrip("#").strip() for path in NOTEBOOKS
              for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"
              for line in cell.source.splitlines() if line.startswith("#")]
    assert len(titles) >= len(NOTEBOOKS)
    for title in titles:
        assert normal(title) in text, title


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


def test_summary_holds_every_headline_number_of_the_notebooks(report):
    _, text = report
    headlines = [o.data[HEADLINES] for o in outputs(NOTEBOOKS) if HEADLINES in o.get("data", {})]
    assert sorted(h["section"] for h in headlines) == list(range(1, len(NOTEBOOKS) + 1))
    summary = text[text.index("Summary"):text.index("Contents")]
    for row in (row for h in headlines for row in h["rows"]):
        assert format_ours(row) in summary, row


def test_report_is_a_paper_without_code_or_checks(report):
    reader, text = report
    assert reader.metadata.title == "k-layer networks with batch normalization on CIFAR-10"
    assert len(NOTEBOOKS) + 1 < len(reader.pages) <= 40
    assert "assert" not in text and "import " not in text and "Traceback" not in text
    executed = [o.data[HEADLINES]["executed"] for o in outputs(NOTEBOOKS)
                if HEADLINES in o.get("data", {})]
    assert executed[0]["code_version"][:12] in text and normal(executed[0]["machine"]) in text


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


def executed_notebook(path, cells):
    """Write a notebook of (markdown or code source, outputs) cells, as if executed."""
    nb = nbformat.v4.new_notebook()
    for count, (source, outs) in enumerate(cells, 1):
        if outs is None:
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source, outputs=outs,
                                                      execution_count=count))
    nbformat.write(nb, path)
    return path


def test_progress_bars_and_widgets_stay_out_of_the_pdf(tmp_path):
    bar = "epoch 3/20: 15%|###       | 300/2000 [00:01<00:07]"
    path = executed_notebook(tmp_path / "bars.ipynb", [
        ("# Training with a bar", None),
        ("train()", [nbformat.v4.new_output("stream", name="stderr", text=bar + "\r"),
                     nbformat.v4.new_output("display_data", {
                         "application/vnd.jupyter.widget-view+json": {"model_id": "a1"},
                         "text/plain": "HBox(children=(FloatProgress(value=0.0)))"}),
                     nbformat.v4.new_output("stream", name="stdout", text="final loss 1.25\n")]),
    ])
    done = build([path], tmp_path / "bars.pdf")
    assert done.returncode == 0, done.stderr
    text = normal("".join(p.extract_text() for p in pypdf.PdfReader(tmp_path / "bars.pdf").pages))
    assert "Training with a bar" in text and "final loss 1.25" in text
    assert "15%" not in text and "HBox" not in text


@pytest.mark.parametrize("fault", ["not executed", "error output"])
def test_broken_notebook_stops_the_build_naming_notebook_and_cell(tmp_path, fault):
    nb = nbformat.read(NOTEBOOKS[1], as_version=4)
    number, cell = next((i, c) for i, c in enumerate(nb.cells, 1) if c.cell_type == "code")
    if fault == "not executed":
        cell.execution_count, cell.outputs = None, []
    else:
        cell.outputs = [nbformat.v4.new_output("error", ename="ValueError",
                                               evalue="lam must be >= 0", traceback=[])]
    path = tmp_path / NOTEBOOKS[1].name
    nbformat.write(nb, path)
    output = tmp_path / "out" / "report.pdf"
    done = build([NOTEBOOKS[0], path], output)
    assert done.returncode != 0
    assert str(path) in done.stderr and f"cell {number} " in done.stderr
    assert ("not executed" if fault == "not executed" else "lam must be >= 0") in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert not output.parent.exists() or not any(output.parent.iterdir())


def test_nbconvert_exporter_writes_the_pdf_of_one_notebook(tmp_path):
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "a3pdf",
                           "--output-dir", str(tmp_path), str(NOTEBOOKS[0])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reader = pypdf.PdfReader(tmp_path / (NOTEBOOKS[0].stem + ".pdf"))
    heading = nbformat.read(NOTEBOOKS[0], as_version=4).cells[0].source.splitlines()[0]
    assert normal(heading.lstrip("# ")) in normal(reader.pages[0].extract_text()
                                                  + reader.pages[1].extract_text())
