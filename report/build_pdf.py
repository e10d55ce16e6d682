"""Join the executed notebooks into one PDF (assignment3.report.pdf: nbconvert, pandoc and Typst
from PyPI; no TeX). Nothing is re-executed. The PDF is written to a temporary name and renamed, so a
failed build leaves no half-written file. What cannot make a PDF (a file that is not a notebook, a
cell not executed or with an error output, an output folder that does not exist) is one line
naming the file (and the cell), with exit status 2."""
import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn


def refuse(message: str) -> NoReturn:
    """What was given cannot make a PDF: one line, exit status 2 (as a usage error)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, default=Path("build/report.pdf"))
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        refuse(f"no such notebook: {', '.join(missing)}")
    try:
        from assignment3.report.pdf import NotebookError, TypesetError, build
        from assignment3.store.outputs import OutputError, check_output, write_atomic
    except ImportError as error:
        sys.exit(f"error: {error.name} is missing; the PDF needs the report extra: "
                 "pip install -e '.[report]' (make setup does it)")
    start = time.perf_counter()
    try:
        check_output(args.output, "pdf")           # before the build, as every output
        pdf = build(args.notebooks)
        write_atomic(args.output, "pdf", lambda f: f.write(pdf))
    except (NotebookError, OutputError) as error:  # what was given: a file, a folder
        refuse(str(error))
    except TypesetError as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        sys.exit(f"error: could not write {args.output} ({error.strerror or error})")
    print(f"wrote {args.output} ({len(pdf) // 1024} KiB, {len(args.notebooks)} notebooks, "
          f"{time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
