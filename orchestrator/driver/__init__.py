"""The driver: the loop (pool events and file reads → ``core.apply`` → effects),
placement, reconcile after a restart, requests from other terminals, the session."""

__all__: list[str] = []
