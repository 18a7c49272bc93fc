# Pocket Keyboard: `make run` starts the app, `make test` runs the tests; each installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages: venv for the stock system Python, Qt's runtime libraries (for the GUI and its offscreen tests) and
# Xvfb for screenshots.
APT_PACKAGES := python3-venv libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 \
	libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0 \
	libxcb-image0 libxcb-xinerama0 libxcb-xkb1 libglib2.0-0 fonts-dejavu-core xvfb xauth
PRESAGE_PACKAGES := presage libpresage-data libpresage1v5

.PHONY: run test setup system-deps presage screenshot clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: system-deps $(STAMP)

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

presage:
	@missing=$$(for p in $(PRESAGE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

run: setup
	$(BIN)/pocketkb

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# The real window under Xvfb, replaying the bundled demo text with a fresh personal model, saved as a picture.
screenshot: setup
	rm -rf runs/screenshot-data
	xvfb-run -a -s "-screen 0 1280x800x24" $(BIN)/pocketkb --data runs/screenshot-data gui \
		--replay assets/demo.txt --speed 200 --screenshot docs/screenshot.png

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
