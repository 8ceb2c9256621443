"""Pull-request state sources: GitHub, GitLab, the Dagster+ API and plain git remotes."""
