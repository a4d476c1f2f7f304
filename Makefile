# Fold Studio — the two commands of the README, and their building blocks.
#   make studio   set up .venv (once) and open the studio on the demo dataset
#   make test     set up .venv + test tools + Chromium (once) and run the whole test suite
# Both are idempotent: stamps in .venv record what was installed, so a second run installs nothing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
export NO_ALBUMENTATIONS_UPDATE := 1
# HF_HUB_OFFLINE is left as you set it: the engine keeps its own processes off-line and lets a training job
# download pretrained weights only when its run allows it (engine/offline.py); your HF_HUB_OFFLINE=1 always
# wins. The tests never reach the network: `make test` sets it (and tests/conftest.py does too).

.PHONY: studio test setup setup-test chromium lint demo

# Streamlit asks for an e-mail address on its very first run (and fails without a terminal); an empty
# answer is what pressing Enter would save, so write it when there is none.
STREAMLIT_CREDENTIALS := $(HOME)/.streamlit/credentials.toml

studio: setup
	@test -f "$(STREAMLIT_CREDENTIALS)" || { mkdir -p "$(dir $(STREAMLIT_CREDENTIALS))" && \
	  printf '[general]\nemail = ""\n' > "$(STREAMLIT_CREDENTIALS)"; }
	$(PY) -m streamlit run studio/app.py

test: setup-test
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test chromium

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PIP) install -r requirements-test.txt
	touch $@

# Debian's Chromium drives the real-browser tests (Playwright cannot download its own browser here).
chromium:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: setup-test
	$(VENV)/bin/ruff check engine studio pages tests bench

demo: setup
	$(PY) -m engine demo
