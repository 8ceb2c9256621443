"""The tags dagster-branch puts on cleanup runs, so runs can be found by namespace in the UI.

Namespace buckets carry the same namespace and pull-request tags (``stores/s3_layout.py``).
"""

TAG_NAMESPACE = "dagster-branch/namespace"
TAG_PULL_REQUEST = "dagster-branch/pull-request"
TAG_STATE = "dagster-branch/state"
TAG_TRIGGER = "dagster-branch/trigger"  # what launched a run outside the sensor ("cli")
RUN_KEY_TAG = "dagster/run_key"  # the tag Dagster gives every run launched with a run key
