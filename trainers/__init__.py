"""Built-in job kinds. Each kind turns a row into the bash script its job runs."""

from trainers.command import job_script

__all__ = ["job_script"]
