"""The ``analytics`` console script: the faust CLI bound to this project's app."""

from __future__ import annotations


def main() -> None:
    """Run the faust command line for ``analytics.app``."""
    from analytics.app import app

    app.main()
