"""``python -m postie`` and the ``postie`` command a pip install puts on the PATH: the command
itself, run inside the extension (no second binary)."""

import os
import sys

from . import _core


def main() -> None:
    """Run the postie command with this process's arguments and exit with its status."""
    # The name it was called by decides as for the binary (`sendmail` is sendmail's command
    # line); `python -m postie` is postie.
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "postie"
    if name.endswith(".py") or name in ("-c", "-m"):
        name = "postie"
    sys.stdout.flush()
    sys.exit(_core.cli([name] + sys.argv[1:]))


if __name__ == "__main__":
    main()
