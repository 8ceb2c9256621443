"""Who owns a record: the code location (or an explicit owner) and, when known, the repository.

Several code locations, from one repository or several, may share a warehouse, a bucket or the
ledger. PR numbers repeat across repositories, so ``pr_7`` of one location is not ``pr_7`` of
another. Every ownership record (ledger row, schema comment, bucket tag, S3 marker object) names
its :class:`Owner`, and everything that lists, plans or removes looks only at its own owner's
records.

The owner's name is the resource's ``owner`` setting when given, else
``DAGSTER_CLOUD_LOCATION_NAME``, else :data:`DEFAULT_OWNER` (open-source Dagster and local runs).
The repository is ``DAGSTER_CLOUD_GIT_REPO``, which Dagster+ sets in branch deployments only: it
is recorded and shown, and two records of one location from two known repositories conflict.

Example::

    >>> owner = Owner("etl", "acme/etl")
    >>> owner.describe()
    "owner 'etl' (repository acme/etl)"
    >>> owner.conflicts_with(Owner("etl", None)), owner.conflicts_with(Owner("ml", None))
    (False, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster_branch.context import DeploymentContext
from dagster_branch.errors import DagsterBranchConfigError

__all__ = ["DEFAULT_OWNER", "OWNER_FIELD_DESCRIPTION", "OWNER_MAX_LENGTH", "Owner"]

DEFAULT_OWNER = "default"
OWNER_MAX_LENGTH = 128
OWNER_FIELD_DESCRIPTION = (
    "Who owns the records this resource writes, and the only owner whose records it lists and "
    "cleans. Default: DAGSTER_CLOUD_LOCATION_NAME, else 'default'. Set it (the same value in "
    "every deployment, local runs included) when code locations share a store outside Dagster+."
)


@dataclass(frozen=True)
class Owner:
    """The owner stamped on ownership records, and the filter applied when reading them.

    Args:
        name: the code location name, or the resource's explicit ``owner``.
        repository: ``owner/repo`` (GitHub) or the project (GitLab), when known.
    """

    name: str
    repository: str | None = None

    @classmethod
    def resolve(cls, explicit: str | None, deployment: DeploymentContext) -> Owner:
        """The owner of a resource: ``explicit`` if set, else the code location, else
        :data:`DEFAULT_OWNER`; the repository from the deployment.

        Raises:
            DagsterBranchConfigError: ``explicit`` is blank or too long.
        """
        if explicit is not None:
            name = explicit.strip()
            if not name or len(name) > OWNER_MAX_LENGTH or not name.isprintable():
                raise DagsterBranchConfigError(
                    f"owner {explicit[:40]!r} is not valid: give a printable name of 1 to "
                    f"{OWNER_MAX_LENGTH} characters, e.g. the code location's name."
                )
        else:
            name = deployment.location_name or DEFAULT_OWNER
        return cls(name=name[:OWNER_MAX_LENGTH], repository=deployment.git_repo)

    def conflicts_with(self, other: Owner) -> bool:
        """True when ``other`` is someone else: another name, or the same name from another
        (known) repository."""
        if other.name != self.name:
            return True
        return bool(self.repository and other.repository and self.repository != other.repository)

    def describe(self) -> str:
        """``owner 'etl' (repository acme/etl)``: how messages name an owner."""
        repository = f" (repository {self.repository})" if self.repository else ""
        return f"owner {self.name!r}{repository}"
