"""Kind ``hf``: ``trainers.hf``'s Seq2SeqTrainer summarization on Ray Train (or its
workers forked on one node, when they fit it), from the
competition's config format; ``on_oom = halve_batch`` divides ``training.batch_size``."""

from orchestrator.kinds._builtin import BuiltinKind

KIND = BuiltinKind("hf", "hf", ray_train=True, knows_batch=True,
                  requires=("torch", "transformers", "accelerate", "rouge_score"), extra="hf",
                  forks_workers=True)
