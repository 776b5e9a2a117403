"""``python -m postie`` and the ``postie`` command a pip install puts on the PATH: the command
itself, run inside the extension (no second binary)."""

import sys

from . import _core


def main() -> None:
    """Run the postie command with this process's arguments and exit with its status."""
    sys.stdout.flush()
    argv = ["postie"] + sys.argv[1:]
    sys.exit(_core.cli(argv))


if __name__ == "__main__":
    main()
