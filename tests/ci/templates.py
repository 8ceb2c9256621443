"""Run the CI templates' own shell, as their CI system would, on this machine.

Nothing is re-typed: the shell comes from the files (``run:`` steps of the GitHub workflow,
``before_script``/``script`` of the GitLab pipeline), the steps and jobs are chosen by the
files' own ``if:`` and ``rules:``, and their ``env:``/``variables:`` are passed as written. What
the CI systems provide around them is played here: GitHub's expressions (the small part of the
language the workflow uses), ``$GITHUB_ENV``, ``actions/checkout`` (a ``git checkout`` of the
test repository) and ``actions/setup-python`` (this virtual environment's Python 3.11).

``pip install`` lines run for real with ``PIP_DRY_RUN`` and ``PIP_NO_INDEX``: they pass when
the pinned versions are the installed ones and fail otherwise, without changing anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB_WORKFLOW = ROOT / ".github" / "workflows" / "dagster-plus.yml"
GITLAB_PIPELINE = ROOT / "ci" / "gitlab" / ".gitlab-ci.yml"
ANY_CI_SCRIPT = ROOT / "ci" / "dagster-cloud-cli.sh"
VENV_BIN = Path(sys.executable).parent


class StepFailed(AssertionError):
    """A template's shell exited non-zero; the message holds its output."""


@dataclass(frozen=True)
class Block:
    """One piece of a template's shell, named the way a CI log names it."""

    name: str  # "github:deploy/Deploy", "gitlab:close_branch"
    shell: str
    env: dict[str, str]
    uses: str | None = None  # a GitHub action instead of shell
    checkout_ref: str | None = None


def base_environment(home: Path) -> dict[str, str]:
    """What every CI machine has: a PATH with Python 3.11 and the CLI, a HOME of its own."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_DRY_RUN": "1",
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",  # only the pins themselves are checked
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def run_shell(block: Block, env: Mapping[str, str], cwd: Path, log: list[str]) -> str:
    """Run one block with bash -e (GitHub's and GitLab's default); raise on failure."""
    finished = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.shell],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    log.append(block.name)
    output = finished.stdout + finished.stderr
    if finished.returncode != 0:
        raise StepFailed(f"{block.name} exited {finished.returncode}:\n{block.shell}\n{output}")
    return output


# -- GitHub Actions ---------------------------------------------------------------------------

TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
                   r"|(?P<word>[A-Za-z_][\w.-]*))")  # fmt: skip


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """A GitHub expression (literals, context paths, ``! == != && ||``, ``always()``)."""
    tokens = [m for m in TOKEN.finditer(expression) if m.group().strip()]
    if "".join(m.group().strip() for m in tokens) != re.sub(r"\s+", "", expression):
        raise ValueError(f"the harness cannot read the expression {expression!r}")
    position = 0

    def peek() -> str | None:
        return tokens[position].group().strip() if position < len(tokens) else None

    def take() -> re.Match[str]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def primary() -> Any:
        token = take()
        if token.group("str") is not None:
            return token.group("str")[1:-1].replace("''", "'")
        text = token.group().strip()
        if text == "(":
            value = either()
            take()
            return value
        if text == "!":
            return not primary()
        if peek() == "(":  # a status function: the harness stops at the first failure
            take()
            take()
            return text in ("always", "success")
        if text in ("true", "false"):
            return text == "true"
        value: Any = context
        for part in text.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def comparison() -> Any:
        left = primary()
        while peek() in ("==", "!="):
            op, right = take().group().strip(), primary()
            equal = str(left or "").lower() == str(right or "").lower()
            left = equal if op == "==" else not equal
        return left

    def both() -> Any:
        left = comparison()
        while peek() == "&&":
            take()
            right = comparison()
            left = right if left else left
        return left

    def either() -> Any:
        left = both()
        while peek() == "||":
            take()
            right = both()
            left = left if left else right
        return left

    return either()


def interpolate(text: Any, context: Mapping[str, Any]) -> str:
    """A value with ``${{ … }}`` parts, as GitHub renders it."""

    def render(match: re.Match[str]) -> str:
        value = evaluate(match.group(1), context)
        return (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )

    return re.sub(r"\$\{\{(.*?)\}\}", render, str(text))


def github_blocks(workflow: dict[str, Any], context: dict[str, Any]) -> Iterator[Block]:
    """The steps GitHub would run for the event in ``context``, jobs in file order."""
    env_context = dict(context)
    workflow_env = {k: interpolate(v, env_context) for k, v in workflow.get("env", {}).items()}
    for job_id, job in workflow["jobs"].items():
        env_context = {**context, "env": workflow_env}
        if not evaluate(str(job.get("if", "true")), env_context):
            continue
        job_env = {
            **workflow_env,
            **{k: interpolate(v, env_context) for k, v in job.get("env", {}).items()},
        }
        for step in job["steps"]:
            step_context = {**context, "env": job_env}
            if not evaluate(str(step.get("if", "success()")), step_context):
                continue
            step_env = {k: interpolate(v, step_context) for k, v in step.get("env", {}).items()}
            name = f"github:{job_id}/{step.get('name', step.get('uses'))}"
            inputs = step.get("with", {})
            ref = interpolate(inputs.get("ref", ""), step_context) if "ref" in inputs else None
            yield Block(name, step.get("run", ""), {**job_env, **step_env}, step.get("uses"), ref)


def run_github(
    event_name: str,
    event: dict[str, Any],
    *,
    checkout: Path,
    base_env: Mapping[str, str],
    runner: Mapping[str, str],
    variables: Mapping[str, str],
    secrets: Mapping[str, str],
    log: list[str],
) -> list[str]:
    """Run the workflow for one event; ``runner`` holds the GITHUB_*/RUNNER_* variables."""
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    github = {
        "event_name": event_name,
        "event": event,
        "sha": runner["GITHUB_SHA"],
        "ref": runner["GITHUB_REF"],
        "head_ref": runner.get("GITHUB_HEAD_REF", ""),
        "repository": runner["GITHUB_REPOSITORY"],
        "run_id": runner["GITHUB_RUN_ID"],
    }
    context = {"github": github, "vars": dict(variables), "secrets": dict(secrets)}
    github_env = Path(runner["RUNNER_TEMP"]) / "github-env"
    github_env.write_text("")
    outputs = []
    for block in github_blocks(workflow, context):
        if block.uses is not None:
            _play_action(block, checkout, runner["GITHUB_SHA"])
            continue
        if "${{" in block.shell:  # GitHub would splice it into the shell: script injection
            raise AssertionError(f"{block.name}: pass expressions through env:, not in run:")
        exported = dict(
            line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line
        )
        env = {**base_env, **runner, "GITHUB_ENV": str(github_env), **block.env, **exported}
        outputs.append(run_shell(block, env, checkout, log))
    return outputs


def _play_action(block: Block, checkout: Path, sha: str) -> None:
    action = (block.uses or "").split("@")[0]
    if action == "actions/checkout":
        ref = block.checkout_ref or sha
        git(checkout, "checkout", "--quiet", ref)
    elif action != "actions/setup-python":  # this virtual environment is Python 3.11
        raise AssertionError(f"{block.name}: the harness cannot play the action {block.uses}")


# -- GitLab CI --------------------------------------------------------------------------------


def gitlab_job(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    """A job with its ``extends`` merged in (GitLab's deep merge, the job's keys winning)."""
    job = pipeline[name]
    merged: dict[str, Any] = {}
    for parent in _as_list(job.get("extends")):
        merged = _deep_merge(merged, gitlab_job(pipeline, parent))
    return _deep_merge(merged, {k: v for k, v in job.items() if k != "extends"})


def gitlab_rule_matches(rules: list[dict[str, Any]], variables: Mapping[str, str]) -> bool:
    """Whether the first rule whose ``if`` holds lets the job in (GitLab's ``rules:``)."""
    for rule in rules:
        if _gitlab_condition(rule.get("if", ""), variables):
            return rule.get("when", "on_success") != "never"
    return False


def gitlab_script(job: dict[str, Any]) -> str:
    """``before_script`` then ``script``, one command a line, as the runner runs them."""
    return "\n".join(_as_list(job.get("before_script")) + _as_list(job.get("script")))


def run_gitlab(
    job_name: str,
    *,
    checkout: Path,
    base_env: Mapping[str, str],
    predefined: Mapping[str, str],
    project_variables: Mapping[str, str],
    log: list[str],
) -> str:
    """Run one job of the pipeline, after checking the pipeline's rules let it run."""
    pipeline = yaml.safe_load(GITLAB_PIPELINE.read_text())
    job = gitlab_job(pipeline, job_name)
    variables = {
        **predefined,
        **{k: str(v) for k, v in pipeline.get("variables", {}).items()},
        **{k: str(v) for k, v in job.get("variables", {}).items()},
        **project_variables,
    }
    if not gitlab_rule_matches(pipeline["workflow"]["rules"], variables):
        raise AssertionError(f"the pipeline's workflow rules refuse {dict(predefined)}")
    if not gitlab_rule_matches(job.get("rules", [{}]), variables):
        raise AssertionError(f"{job_name}: its rules refuse this pipeline")
    cwd = checkout
    if variables.get("GIT_STRATEGY") == "none":  # no checkout at all: an empty directory
        cwd = checkout.parent / f"{job_name}-without-checkout"
        cwd.mkdir(exist_ok=True)
    block = Block(f"gitlab:{job_name}", gitlab_script(job), variables)
    return run_shell(block, {**base_env, **variables}, cwd, log)


def _gitlab_condition(condition: str, variables: Mapping[str, str]) -> bool:
    if not condition:
        return True
    left, right = (side.strip() for side in condition.split("=="))

    def value(side: str) -> str:
        return variables.get(side[1:], "") if side.startswith("$") else side.strip("\"'")

    return value(left) == value(right)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


# -- every shell block, for shellcheck and for the coverage check -----------------------------


def all_shell_blocks() -> list[Block]:
    """Every ``run:`` step and GitLab job script of the templates (each once)."""
    blocks = []
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    for job_id, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                name = f"github:{job_id}/{step.get('name', step['run'][:40])}"
                blocks.append(Block(name, step["run"], {}))
    pipeline = yaml.safe_load(GITLAB_PIPELINE.read_text())
    for name, job in pipeline.items():
        if isinstance(job, dict) and "script" in job and not name.startswith("."):
            blocks.append(Block(f"gitlab:{name}", gitlab_script(gitlab_job(pipeline, name)), {}))
    return blocks


def git(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git in ``repo`` and return its output."""
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
