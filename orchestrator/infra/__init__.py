"""What every part shares and nothing of ours is below: errors, storage URIs, the Ray
connection, the process supervisor. ``trainers/`` and ``sweeps/`` may import it."""

__all__: list[str] = []
