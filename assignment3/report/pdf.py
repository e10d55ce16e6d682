"""The report's PDF from executed notebooks, without TeX. nbconvert exports what a reader sees as
Markdown (no code, no cells tagged "hide", no stderr streams such as progress bars, no widgets),
pandoc (the pypandoc-binary wheel) turns it into Typst, and Typst (the typst wheel, with its own
fonts) typesets it. Nothing is re-executed. `ReportExporter` is the same route as an nbconvert
exporter: `jupyter nbconvert --to a3pdf notebook.ipynb`."""
import copy
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import Exporter, MarkdownExporter
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets.config import Config

from ..errors import Error
from ..store.provenance import short_version
from .paper import HEADLINES, KEY, SUMMARY_COLUMNS, markdown_table, summary_rows

TITLE = "k-layer networks with batch normalization on CIFAR-10"
SUBTITLE = "KTH DD2424 Assignment 3, reproduced in numpy"
WIDGET = "application/vnd.jupyter.widget-view+json"
#: Styles (Typst), placed before the body by pandoc's default template.
STYLE = """
#set image(width: 88%)
#set table(inset: (x: 5pt, y: 3.5pt), stroke: (x, y) => if y == 0 { (bottom: 0.6pt) })
#show table: set text(size: 0.85em)
#show table: set par(justify: false)
#show table.cell: set align(left)
#set text(hyphenate: false)
#show outline.entry.where(level: 1): set block(above: 1em)
""".strip()


class NotebookError(Error, ValueError):
    """A notebook that cannot go into the report: not a notebook, a cell not executed or an
    error output."""


def read_notebook(path: str | os.PathLike[str]) -> NotebookNode:
    """The notebook at `path` (nbformat 4, validated); NotebookError if it is none."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except (ValueError, KeyError, AttributeError, TypeError, nbformat.ValidationError) as err:
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise NotebookError(f"{path} is not a valid Jupyter notebook ({reason})") from None
    return nb


class TypesetError(Error, RuntimeError):
    """pandoc or Typst failed on the report's source."""


def check_executed(nb: NotebookNode, name: str) -> None:
    """Raise NotebookError naming `name` and the cell if a code cell of `nb` was not executed or
    holds an error output."""
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        where = f"{name}, cell {number} ({cell.source.strip().splitlines()[0][:50]!r})"
        if cell.execution_count is None:
            raise NotebookError(f"{where} was not executed; execute the notebook (make notebooks, "
                                "or jupyter nbconvert --execute --inplace) before building the PDF")
        for output in cell.outputs:
            if output.output_type == "error":
                raise NotebookError(f"{where} holds an error output ({output.ename}: "
                                    f"{output.evalue}); fix it and re-execute the notebook")


class ReaderOutputs(Preprocessor):
    """Keeps the outputs a reader of the PDF needs. Drops stderr streams (progress bars), widget
    views and the caption lines shown under figures in a notebook; turns each captioned SVG
    figure (`paper.show_figure`, extracted to a file before) into a Markdown figure, which pandoc
    and Typst number; moves the headline numbers to resources["headlines"]."""

    def preprocess_cell(self, cell: NotebookNode, resources: dict[str, Any],
                        index: int) -> tuple[NotebookNode, dict[str, Any]]:
        if cell.cell_type != "code":
            return cell, resources
        kept = []
        for output in cell.outputs:
            data, mark = output.get("data", {}), output.get("metadata", {}).get(KEY, {})
            if HEADLINES in data:
                resources.setdefault("headlines", []).append(data[HEADLINES])
            elif "figure" in mark:
                image = output.metadata["filenames"]["image/svg+xml"]
                kept.append(nbformat.v4.new_output(
                    "display_data", {"text/markdown": f"![{mark['figure']}]({image})"}))
            elif not (output.output_type == "stream" and output.name == "stderr"
                      or WIDGET in data or mark.get("caption")):
                kept.append(output)
        cell.outputs = kept
        return cell, resources


#: How nbconvert exports a notebook for the reader: no code, no prompts, no cells tagged "hide",
#: the outputs' files (figures) extracted, then `ReaderOutputs`.
EXPORT = Config({"TemplateExporter": {"exclude_input": True, "exclude_input_prompt": True,
                                      "exclude_output_prompt": True},
                 "TagRemovePreprocessor": {"enabled": True, "remove_cell_tags": {"hide"}},
                 "ExtractOutputPreprocessor": {"enabled": True},
                 "MarkdownExporter": {"preprocessors": [ReaderOutputs]}})


def _distinct(values: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(values))


def title_block(headlines: list[dict[str, Any]], title: str = TITLE) -> dict[str, Any]:
    """The pandoc metadata of the title block: title, subtitle, and as its date line when, with
    which code version and on which machine the notebooks were executed."""
    meta = {"title": title, "subtitle": SUBTITLE, "papersize": "a4",
            "margin": {"x": "2.2cm", "y": "2.4cm"}, "fontsize": "10.5pt",
            "section-numbering": "1.1", "page-numbering": "1"}
    records = [h["executed"] for h in headlines]
    if records:
        dates = sorted(r["date"] for r in records)
        when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
        versions = _distinct(f"`{short_version(r['code_version'])}`" for r in records)
        meta["date"] = (f"Notebooks executed {when}\\\ncode version {versions}\\\n"
                        f"on {_distinct(r['machine'] for r in records)}")
    return meta


def summary_markdown(headlines: list[dict[str, Any]]) -> str:
    """The summary section: every published headline number in one table."""
    if not headlines:
        return ""
    table = markdown_table(summary_rows(sorted(headlines, key=lambda h: h["section"])),
                           SUMMARY_COLUMNS, caption=(
                               "Headline numbers of every section, taken from the executed "
                               "notebooks. Ours: mean ± standard deviation over the seeds where "
                               "there are several. The references are the student report's and "
                               "the course's (its own implementation, or the best fully connected "
                               "net it cites); - where there is none."))
    return f"# Summary {{.unnumbered}}\n\n{table}\n\n"


def report_markdown(notebooks: Mapping[str, NotebookNode],
                    title: str = TITLE) -> tuple[str, dict[str, bytes | str]]:
    """The report of the executed `notebooks` (name -> notebook node, each checked, their cells
    joined in order) as Markdown with a YAML title block, the summary and a table of contents
    before the body. Returns (markdown, {file name: bytes or text})."""
    for name, nb in notebooks.items():
        check_executed(nb, name)
    merged = copy.deepcopy(next(iter(notebooks.values())))
    merged.cells = [cell for nb in notebooks.values() for cell in nb.cells]
    merged.metadata["title"] = title
    body, resources = MarkdownExporter(config=EXPORT).from_notebook_node(merged)
    headlines = resources.get("headlines", [])
    front = json.dumps(title_block(headlines, title), ensure_ascii=False)
    contents = "```{=typst}\n#outline(depth: 2)\n```\n\n"
    return (f"---\n{front}\n---\n\n{summary_markdown(headlines)}{contents}{body}",
            resources.get("outputs", {}))


def typeset(markdown: str, files: Mapping[str, bytes | str]) -> bytes:
    """PDF bytes of `markdown` (pandoc Markdown) whose images are `files`, via pandoc and Typst
    with the fonts the typst wheel embeds (no system fonts, so every machine gives the same)."""
    import pypandoc
    import typst

    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            path = Path(tmp, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        try:
            source = pypandoc.convert_text(
                markdown, "typst", format="markdown", cworkdir=tmp,
                extra_args=["--standalone", f"--variable=header-includes:{STYLE}"])
            return typst.compile(source.encode(), root=tmp, font_paths=[],
                                 ignore_system_fonts=True)
        except RuntimeError as error:        # pypandoc's and typst's errors
            raise TypesetError(f"typesetting failed: {error}") from None


def build(paths: Iterable[str | os.PathLike[str]], title: str = TITLE) -> bytes:
    """PDF bytes of the executed notebooks at `paths`, in that order."""
    notebooks = {str(p): read_notebook(p) for p in paths}
    return typeset(*report_markdown(notebooks, title))


class ReportExporter(Exporter):
    """nbconvert exporter `a3pdf`: the PDF of an executed notebook by the report's route."""
    export_from_notebook = "PDF via Typst (assignment3)"
    output_mimetype = "application/pdf"

    def _file_extension_default(self) -> str:
        return ".pdf"

    # nbconvert's Exporter declares a NotebookNode as the output; a PDF exporter returns bytes
    # (nbconvert's own TemplateExporter, returning str, ignores the override error the same way)
    def from_notebook_node(  # type: ignore[override]
            self, nb: NotebookNode, resources: dict[str, Any] | None = None,
            **kw: Any) -> tuple[bytes, dict[str, Any]]:
        resources = self._init_resources(resources)   # output_extension: file_extension's
        name = resources["metadata"].get("name", "notebook")
        title = nb.metadata.get("title") or f"{TITLE}: {name}"
        return typeset(*report_markdown({name: nb}, title)), resources
