"""Removing what a closed branch created: the job, its ops, the plan, the verification and
the report."""
