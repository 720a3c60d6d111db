"""Tasks: the imagery grid, the task lifecycle and progress."""
