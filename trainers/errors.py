"""The error a built-in kind's config file raises when it cannot run: the orchestrator's
one ``ConfigError`` (``ConfigError(path, problem=..., key=..., value=..., fix=...)``)."""

from __future__ import annotations

from orchestrator.infra.errors import ConfigError

__all__ = ["ConfigError"]
