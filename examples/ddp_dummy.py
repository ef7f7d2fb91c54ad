"""The classic dummy example for ``trainers.torch``: a linear classifier on random data.

Plain:      python examples/ddp_dummy.py
As a row:   Kind=ddp, Config=examples/ddp_dummy.yaml (``python -m trainers.torch ...``)

The data are generated from a fixed seed, so every DDP rank builds the same dataset
(``prepare_data_loader`` then gives each rank its shard). Labels follow a hidden
linear rule, so the loss falls.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainers.torch import Trainer

FEATURES, CLASSES = 10, 2


class DummyTrainer(Trainer):
    loss_fn = nn.CrossEntropyLoss()

    def train_step(self, batch):
        x, y = batch
        return {"loss": self.loss_fn(self.model(x), y)}

    def test_step(self, batch):
        x, y = batch
        out = self.model(x)
        return {"loss": self.loss_fn(out, y), "acc": (out.argmax(1) == y).float().mean()}


def make_data(samples: int, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, FEATURES, generator=g)
    rule = torch.randn(FEATURES, CLASSES, generator=torch.Generator().manual_seed(1234))
    return TensorDataset(x, (x @ rule).argmax(1))


def build(params: dict) -> dict:
    """What a Kind=ddp row's ``build:`` returns: the model, optimizer, scheduler, loaders."""
    samples, batch = int(params.get("samples", 512)), int(params.get("batch_size", 32))
    torch.manual_seed(int(params.get("seed", 0)))
    model = nn.Linear(FEATURES, CLASSES)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params.get("lr", 0.01)))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=int(params.get("t_max", 10)))
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler,
            "train_loader": DataLoader(make_data(samples, seed=1), batch_size=batch, shuffle=True),
            "valid_loader": DataLoader(make_data(samples // 4, seed=2), batch_size=batch)}


if __name__ == "__main__":
    parts = build({"lr": 0.01})
    trainer = DummyTrainer(parts["model"], "cpu", optimizer=parts["optimizer"],
                           scheduler=parts["scheduler"])
    trainer.run(3, parts["train_loader"], parts["valid_loader"])
