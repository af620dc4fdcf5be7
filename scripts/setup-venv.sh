#!/usr/bin/env bash
# Build one of the two virtualenvs from its lock file. Usage: setup-venv.sh app|rasa
# Idempotent: make calls it only when the lock file is newer than the venv's marker.
set -euo pipefail
cd "$(dirname "$0")/.."
which_env=${1:?usage: setup-venv.sh app|rasa}
export PIP_DISABLE_PIP_VERSION_CHECK=1 RASA_TELEMETRY_ENABLED=false

case "$which_env" in
  rasa)
    venv=.venv-rasa; lock=requirements/rasa.lock
    py=""
    for candidate in ${PY310:-} python3.10 /root/.pyenv/versions/3.10.13/bin/python; do
      if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
        py=$candidate; break
      fi
    done
    if [ -z "$py" ]; then
      echo "error: Rasa 3.6 needs Python 3.10, and none was found." >&2
      echo "  Install it (e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv')" >&2
      echo "  or point PY310 at it: make setup PY310=/path/to/python3.10" >&2
      exit 1
    fi
    ;;
  app)
    venv=.venv; lock=requirements/app.lock
    py=${PYTHON:-python3}
    if ! "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
      echo "error: the action server needs Python >= 3.11 as '$py' (set PYTHON=...)." >&2
      exit 1
    fi
    ;;
  *) echo "usage: setup-venv.sh app|rasa" >&2; exit 2 ;;
esac

# pip repeats a harmless warning per package for this machine's local index folders.
quiet_pip() { "$venv/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

started=$(date +%s)
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
quiet_pip install -q --upgrade "pip>=24"
# The lock is a complete freeze: install exactly it, nothing resolved on the fly.
quiet_pip install -q --no-deps -r "$lock"
if [ "$which_env" = app ]; then
  quiet_pip install -q --no-deps -e . 2>/dev/null || quiet_pip install --no-deps -e .
fi
"$venv/bin/python" -m pip check >/dev/null || echo "warning: pip check reports conflicts in $venv" >&2
touch "$venv/.installed"
echo "$venv ready in $(( $(date +%s) - started )) s"
