#!/usr/bin/env bash
# ci/python.sh — the Python package (python/, distribution postie-mail): builds the extension
# into a virtual environment of its own with maturin (the debug profile and target dir every
# other step uses) and runs its tests with pytest. Needs the mail peers running (ci/test.sh
# starts them) and Chromium (ci/mail-peers.sh install puts it there).
#
#   ci/python.sh [PYTEST ARGS...]
#
# Environment: POSTIE_PY_VENV, where the environment lives (default $TMPDIR/postie-py-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${POSTIE_PY_VENV:-${TMPDIR:-/tmp}/postie-py-venv}
# the versions the tests were written against (the package itself asks for maturin>=1.9,<2);
# Google's API client, Microsoft's Graph SDK and requests are independent clients of the
# sandbox's API emulation
PIP_PKGS="maturin==1.16.0 pytest==9.2.0 google-api-python-client==2.202.0 google-auth==2.63.0 requests==2.34.2 msgraph-sdk==1.65.0"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC2086
"$VENV/bin/pip" install --quiet --disable-pip-version-check $PIP_PKGS
export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
# What the README tells users (`pip install ./python`), with the debug profile of the other steps
# (MATURIN_PEP517_ARGS) so nothing is compiled twice; the tests then import the installed wheel.
MATURIN_PEP517_ARGS="--profile dev" pip install --quiet --disable-pip-version-check \
  --no-build-isolation --force-reinstall --no-deps ./python
cd python/tests
exec python -m pytest -q "$@"
