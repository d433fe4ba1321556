"""`python -m canaryflow` is the `canaryflow` command."""

from canaryflow.cli import main

main()
