# shopbot: `make run` to chat, `make test` to test. See README.md.
SHELL := /bin/bash
export RASA_TELEMETRY_ENABLED := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

APP := .venv/bin
CATALOG ?=
IMAGES ?=
STORE ?=
SCALE ?= 2
PYTEST_ARGS ?=

.PHONY: setup run run-scaled test shell ingest train lint bench-smoke clean

setup: .venv/.installed .venv-rasa/.installed

.venv/.installed: requirements/app.lock pyproject.toml
	scripts/setup-venv.sh app

.venv-rasa/.installed: requirements/rasa.lock
	scripts/setup-venv.sh rasa

# `make run` is the demo: demo mode on (demo-shopper and its orders) unless SHOPBOT_DEMO is set.
# (A make variable, not shell syntax in the recipe: make then runs shopbot itself, with no
# shell in between, so Ctrl-C reaches it as it reaches a command typed in the terminal.)
run: export SHOPBOT_DEMO ?= true
run: setup
	$(APP)/shopbot run $(if $(CATALOG),--catalog $(CATALOG)) $(if $(IMAGES),--images $(IMAGES)) $(if $(STORE),--store $(STORE))

# The scaled topology on this machine: PostgreSQL, Redis, a Chroma server, SCALE Rasa and
# SCALE action-server replicas behind HAProxy (Debian packages: see docs/deploy.md).
run-scaled: export SHOPBOT_DEMO ?= true
run-scaled: setup
	$(APP)/shopbot run --scale $(SCALE) $(if $(CATALOG),--catalog $(CATALOG)) $(if $(IMAGES),--images $(IMAGES)) $(if $(STORE),--store $(STORE))

test: setup
	$(APP)/lint-imports --no-cache
	$(APP)/python -m pytest $(PYTEST_ARGS)

shell: setup
	$(APP)/shopbot shell

ingest: setup
	$(APP)/shopbot ingest $(CATALOG) $(if $(IMAGES),--images $(IMAGES)) $(if $(STORE),--store $(STORE))

train: setup
	$(APP)/shopbot train

lint: setup
	$(APP)/ruff check .

clean:
	rm -rf var
