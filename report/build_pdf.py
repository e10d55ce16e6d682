"""Join the executed notebooks into one PDF (assignment3.report.pdf: nbconvert, pandoc and Typst
from PyPI; no TeX). Nothing is re-executed. The PDF is written to a temporary name and renamed, so a
failed build leaves no half-written file; a notebook with a cell not executed or an error output
stops the build with a message naming the notebook and the cell."""
import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, default=Path("build/report.pdf"))
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    try:
        from assignment3.report.pdf import NotebookError, TypesetError, build
        from assignment3.store.outputs import OutputError, check_output, write_atomic
    except ImportError as error:
        sys.exit(f"error: {error.name} is missing; the PDF needs the report extra: "
                 "pip install -e '.[report]' (make setup does it)")
    start = time.perf_counter()
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        check_output(args.output, "pdf")           # before the build, as every output
        pdf = build(args.notebooks)
        write_atomic(args.output, "pdf", lambda f: f.write(pdf))
    except (NotebookError, TypesetError, OutputError) as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        sys.exit(f"error: could not write {args.output} ({error.strerror or error})")
    print(f"wrote {args.output} ({len(pdf) // 1024} KiB, {len(args.notebooks)} notebooks, "
          f"{time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
