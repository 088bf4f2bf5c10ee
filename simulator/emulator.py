"""`python -m simulator.emulator`: the emulated inference server's command at its first name,
which the local actuator's configs and docs use; the code lives in `simulator.live`."""

from __future__ import annotations

import sys

from simulator.live.emulator_cli import main

if __name__ == "__main__":
    sys.exit(main())
