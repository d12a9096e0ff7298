"""Git: repositories, task branches and worktrees."""
