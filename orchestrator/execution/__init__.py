"""Running attempts: the runner actor, the pool of warm runners (behind ``Pool``), the
launch spec of an attempt, and what an attempt leaves behind."""

__all__: list[str] = []
