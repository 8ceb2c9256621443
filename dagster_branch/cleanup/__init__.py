"""Removing what a closed branch created: per-store removal, planning and the cleanup job."""
