"""What people see: the row view model (``status``, ``--json``, the summary), the
terminal UI and the HTML report. Views read; they never change a row."""

__all__: list[str] = []
