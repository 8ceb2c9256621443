"""The example code location's build: what Dagster+ installs to run it, and nothing else.

``dagster_cloud.yaml`` points the build here rather than at the repository root, whose
``pyproject.toml`` also lists the test, lint and benchmark tools (Dagster+'s Serverless builder
collects every optional dependency of a build directory's ``pyproject.toml``). The builder runs
this file twice: ``setup.py egg_info`` to collect the requirements (dagster-branch's own, read from
the root ``pyproject.toml``, plus ``requirements.txt`` beside this file) and ``setup.py build`` to
package the two Python packages of the repository root into the source pex.
"""

from pathlib import Path

from setuptools import find_packages, setup

try:
    import tomllib
except ImportError:  # Python 3.10: tomli comes with dagster-cloud-cli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["dagster_branch", "example_project"]

project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

setup(
    name="example-project-location",
    version=project["version"],
    packages=find_packages(str(ROOT), include=[f"{p}*" for p in PACKAGES]),
    package_dir={"": str(ROOT)},
    install_requires=project["dependencies"],  # dagster-branch's runtime dependencies only
)
