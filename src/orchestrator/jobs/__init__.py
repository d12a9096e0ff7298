"""Jobs: `launch_job`, the one place a stage's work starts, and the decisions around it."""
