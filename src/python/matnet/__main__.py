"""``python -m matnet``: see :mod:`matnet.cli`."""

from .cli import main

raise SystemExit(main())
