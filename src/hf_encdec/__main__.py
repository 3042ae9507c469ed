"""`python -m hf_encdec ...` (also under `torchrun -m hf_encdec ...`) runs the CLI."""

from .cli import main

raise SystemExit(main())
