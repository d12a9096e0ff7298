"""`orch demo`: the whole product on a sample repository, with nothing configured."""
