"""Self-hosting: the orchestrator delivers its own changes and redeploys itself."""
