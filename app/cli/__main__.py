"""`python -m app.cli ...` is `cairn ...`."""

from app.cli import main

raise SystemExit(main())
