# Two commands matter: `make demo` (the whole branch lifecycle on the embedded defaults) and
# `make test` (the test suite). Both create the virtual environment in .venv when needed.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench install clean

# The marker's name holds a checksum of pyproject.toml, so a changed file reinstalls and a
# touched one (a fresh clone next to an existing .venv) does not. --compile-bytecode writes the
# .pyc files once at install: uv does not by default, and with PYTHONDONTWRITEBYTECODE set (as on
# many CI images) every process would otherwise compile dagster, dbt and boto3 again on import
# (`import dagster_branch`: 7.6 s of CPU without them, 3.4 s with them).
$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The demo plays example_project/, which lives in the repository, not in the wheel.
demo: $(STAMP)
	$(BIN)/python -m example_project.demo

# The suite runs in parallel (pytest-xdist): each worker starts its own PostgreSQL cluster and S3
# server on free ports, and every test its own database, buckets and tmp_path. The tests mostly
# wait on servers and subprocesses, so more workers than cores pay.
TEST_WORKERS ?= 4

test: $(STAMP)
	@scripts/ensure-postgres
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=15

# The workflow files against the GitHub Actions and GitLab CI schemas that check-jsonschema ships
# (no network), and shellcheck on every shell script and on each shell block of the templates.
SHELL_SCRIPTS := .ci/run scripts/ensure-postgres $(wildcard ci/*.sh)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.gitlab-ci ci/gitlab/.gitlab-ci.yml
	$(BIN)/shellcheck $(SHELL_SCRIPTS)
	$(BIN)/python -m tests.ci.shellcheck_blocks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
