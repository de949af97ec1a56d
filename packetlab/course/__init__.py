"""The course: per module (mNN_slug) its topology, helpers and the `check_*` exercises."""
