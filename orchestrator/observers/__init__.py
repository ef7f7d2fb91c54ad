"""Observers of status changes — console lines, notifications, the registry, queue
metrics. Each receives a frozen ``StatusChanged``; none decides state."""

__all__: list[str] = []
