"""``python -m runners.local.kvs_emulator``: the CLI of :mod:`runners.local.kvs_emulator.cli`."""
import sys

from runners.local.kvs_emulator.cli import main

sys.exit(main())
