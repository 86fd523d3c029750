"""`python -m builder` runs the wharfie CLI (the same as the `wharfie` console script)."""

from builder.cli import main

main()
