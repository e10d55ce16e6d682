"""Join the executed notebooks into one PDF with nbconvert's LaTeX route (xelatex + pandoc).

Code cells are left out (the notebooks hold them); cells tagged "hide" (the claim checks) are
removed whole. Nothing is re-executed. The PDF is written to a temporary name and renamed, so a
failed build leaves no half-written file.
"""
import argparse
import copy
import shutil
import sys
from pathlib import Path

TITLE = "k-layer networks with batch normalization on CIFAR-10"
TOOLS = {"xelatex": "texlive-xetex texlive-fonts-recommended texlive-plain-generic",
         "pandoc": "pandoc"}


def merge(paths):
    """One notebook holding the cells of `paths` in order."""
    import nbformat
    notebooks = [nbformat.read(p, as_version=4) for p in paths]
    merged = copy.deepcopy(notebooks[0])
    merged.cells = [cell for nb in notebooks for cell in nb.cells]
    merged.metadata["title"] = TITLE
    merged.metadata["authors"] = []
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, default=Path("build/report.pdf"))
    args = parser.parse_args(argv)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(TOOLS[tool] for tool in missing)
        sys.exit(f"error: {', '.join(missing)} not found; the PDF needs them. On Debian/Ubuntu: "
                 f"sudo apt-get install {packages}")
    from nbconvert import PDFExporter
    from traitlets.config import Config

    config = Config()
    config.TemplateExporter.exclude_input = True
    config.TemplateExporter.exclude_input_prompt = True
    config.TemplateExporter.exclude_output_prompt = True
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {"hide"}
    pdf, _ = PDFExporter(config=config).from_notebook_node(merge(args.notebooks))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_suffix(".pdf.part")
    partial.write_bytes(pdf)
    partial.replace(args.output)
    print(f"wrote {args.output} ({len(pdf) // 1024} KiB, {len(args.notebooks)} notebooks)")


if __name__ == "__main__":
    main()
