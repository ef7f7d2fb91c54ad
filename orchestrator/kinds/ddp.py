"""Kind ``ddp``: a ``trainers.torch`` Trainer (or a ``train_loop_per_worker``) on Ray
Train's ``TorchTrainer``, ``Workers`` workers of ``GPUs`` each, on one node or several.

Its batch lives in the user's own ``params``: ``on_oom = halve_batch`` works when they
hold a whole ``batch_size`` (``trainers.torch.config.load`` divides it), and is refused
otherwise (``more_gpu`` always works)."""

from orchestrator.core import JobSpec
from orchestrator.kinds._builtin import BuiltinKind


class DDPKind(BuiltinKind):
    def halves_batch(self, spec: JobSpec) -> str:
        if spec.config_path is None:
            return "a ddp row needs its Config"
        try:
            params = self.load(spec.config_path, check_paths=False).params
        except Exception:  # noqa: BLE001 - check() reports a config that does not load
            return f"{spec.config_path} does not load"
        size = params.get("batch_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            return (f"{spec.config_path} has no whole params.batch_size to halve — add "
                    "batch_size: N to params (build() reads it)")
        return ""


KIND = DDPKind("ddp", "torch", ray_train=True, knows_batch=True,
               requires=("torch", "safetensors"), extra="ddp", forks_workers=True)
