"""`python -m assignment3 ...`: the command line."""
from .cli import main

raise SystemExit(main())
