"""What a Ray Train job hands its controller and workers through Ray's runtime_env (which
Ray stores and its dashboard shows): the job's settings, never its secrets."""

from trainers.ray_job import job_env


def test_settings_pass_secrets_do_not():
    environ = {"WANDB_PROJECT": "p", "WANDB_MODE": "offline", "WANDB_API_KEY": "k-1",
               "HF_HUB_OFFLINE": "1", "HF_TOKEN": "t-2", "HUGGING_FACE_HUB_TOKEN": "t-3",
               "ORCH_STORAGE": "s3://b/runs", "ORCH_METRICS_FILE": "/r/m.jsonl",
               "OMP_NUM_THREADS": "1", "AWS_SECRET_ACCESS_KEY": "s-4",
               "WANDB_PASSWORD": "p-5", "ORCH_DB_CREDENTIALS": "c-6", "HOME": "/root"}
    assert job_env(environ) == {"WANDB_PROJECT": "p", "WANDB_MODE": "offline",
                                "HF_HUB_OFFLINE": "1", "ORCH_STORAGE": "s3://b/runs",
                                "ORCH_METRICS_FILE": "/r/m.jsonl", "OMP_NUM_THREADS": "1"}
