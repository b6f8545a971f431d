"""``python -m workflow.runtime.cli``: the ``workflow`` command."""

from . import main

main()
