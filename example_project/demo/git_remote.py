"""A throwaway git remote for the demo: a bare repository with ``main`` and feature branches.

It plays the Git host: :class:`~dagster_branch.GitRemoteBranches` asks it which branches exist,
and "merging a pull request" is a real ``git merge`` pushed to ``main`` followed by deleting the
branch on the remote, exactly what a host does when a PR is merged with "delete branch".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dagster_branch.errors import DagsterBranchError

__all__ = ["DemoRemote"]

_IDENTITY = ("-c", "user.name=dagster-branch demo", "-c", "user.email=demo@example.invalid")


class DemoRemote:
    """A bare repository at ``<folder>/origin.git`` and a working clone next to it.

    Example::

        remote = DemoRemote.create(tmp, branches=["feature/a"])
        remote.merge_and_delete("feature/a")
    """

    def __init__(self, folder: Path) -> None:
        self.bare = folder / "origin.git"
        self.work = folder / "work"

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        # A clean, non-interactive git: no user configuration, no prompts, a fixed identity.
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
        result = subprocess.run(
            ["git", *_IDENTITY, "-c", "init.defaultBranch=main", *args],
            cwd=cwd or self.work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DagsterBranchError(
                f"git {args[0]} failed while preparing the demo's remote: "
                f"{result.stderr.strip()[-300:]}"
            )
        return result.stdout

    @classmethod
    def create(cls, folder: Path, *, branches: list[str]) -> DemoRemote:
        """A remote whose ``main`` has one commit and each branch one commit more."""
        remote = cls(folder)
        remote._git("init", "--quiet", "--bare", str(remote.bare), cwd=folder)
        remote._git("clone", "--quiet", str(remote.bare), str(remote.work), cwd=folder)
        remote._commit("README.md", "# shop analytics\n", "Initial commit")
        remote._git("push", "--quiet", "origin", "HEAD:refs/heads/main")
        for branch in branches:
            remote._git("checkout", "--quiet", "-b", branch, "main")
            slug = branch.replace("/", "-")
            remote._commit(f"changes/{slug}.md", f"work on {branch}\n", f"Work on {branch}")
            remote._git("push", "--quiet", "origin", f"{branch}:refs/heads/{branch}")
        remote._git("checkout", "--quiet", "main")
        return remote

    def _commit(self, path: str, text: str, message: str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        self._git("add", path)
        self._git("commit", "--quiet", "-m", message)

    def merge_and_delete(self, branch: str) -> None:
        """Merge ``branch`` into ``main`` on the remote, then delete it there ("PR merged")."""
        self._git("checkout", "--quiet", "main")
        self._git("merge", "--quiet", "--no-ff", "-m", f"Merge {branch}", branch)
        self._git("push", "--quiet", "origin", "main")
        self._git("push", "--quiet", "origin", "--delete", branch)

    def branches(self) -> list[str]:
        """The branches the remote holds now."""
        out = self._git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.bare)
        return sorted(out.split())
