"""A W&B sweep written for ``wandb.agent(sweep_id, function=train)``: no ``program:`` in
its sweep file (``configs/sweeps/toy_function.yaml``), the sweep created in code.

Unchanged, it runs as each trial of a ``Kind=sweep`` row whose ``TrainingCommand`` is
``python examples/wandb_agent_function.py`` (or ``orchestrator sweep run FILE --program
'python wandb_agent_function.py'``): inside a trial ``wandb.sweep`` returns the running
sweep and ``wandb.agent`` calls ``train`` once with the trial's parameters. ``val_loss``
is a deterministic fake, lowest at ``lr = 0.01``.
"""

import math

import wandb

SWEEP = {"method": "grid", "metric": {"name": "val_loss", "goal": "minimize"},
         "parameters": {"lr": {"values": [0.001, 0.01, 0.1]}, "epochs": {"value": 3}}}


def train():
    with wandb.init() as run:
        lr = float(run.config.lr)
        for epoch in range(int(run.config.epochs)):
            wandb.log({"val_loss": (math.log10(lr) + 2.0) ** 2 + 1.0 / (epoch + 1),
                       "epoch": epoch})


if __name__ == "__main__":
    sweep_id = wandb.sweep(SWEEP, project="toy")
    wandb.agent(sweep_id, function=train, count=3)
