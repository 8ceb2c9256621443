"""shellcheck on every shell block of the CI templates: ``python -m tests.ci.shellcheck_blocks``.

``make lint`` runs it. Each ``run:`` step and each GitLab job script (``before_script`` and
``script``) is written to a file of its own, named after the block, and checked as bash; the CI
systems' own variables are uppercase, which shellcheck takes as coming from the environment.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.ci.templates import all_shell_blocks


def main() -> int:
    """Check every block; print shellcheck's findings and return its exit code."""
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for block in all_shell_blocks():
            path = Path(folder) / (re.sub(r"[^\w.-]+", "_", block.name) + ".sh")
            path.write_text(f"#!/usr/bin/env bash\n# {block.name}\n{block.shell}\n")
            files.append(str(path))
        shellcheck = Path(sys.executable).parent / "shellcheck"
        finished = subprocess.run([str(shellcheck), "--shell=bash", *files], check=False)
    print(f"shellcheck: {len(files)} template blocks checked")
    return finished.returncode


if __name__ == "__main__":
    sys.exit(main())
