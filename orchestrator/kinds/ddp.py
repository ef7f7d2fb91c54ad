"""Kind ``ddp``: a ``trainers.torch`` Trainer (or a ``train_loop_per_worker``) on Ray
Train's ``TorchTrainer``, ``Workers`` workers of ``GPUs`` each, on one node or several.

Its batch lives in the user's own ``build``/``params``, so ``on_oom = halve_batch`` is
not offered (``more_gpu`` is)."""

from orchestrator.kinds._builtin import BuiltinKind

KIND = BuiltinKind("ddp", "torch", ray_train=True)
