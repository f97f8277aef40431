"""``python -m crmbridge`` runs the CLI."""

from crmbridge.cli import main

main()
