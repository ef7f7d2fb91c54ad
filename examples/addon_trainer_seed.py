"""The add-on Trainer guide's examples (shared/seeds/trainer-with-addons.md), with only
their import lines changed: ``zae_engine.trainer``, ``zae_engine.trainer.addons(.mpu)`` and
``zae_engine.schedulers`` → ``trainers.torch``.

``python examples/addon_trainer_seed.py basic OUT`` runs the basic example
(StateManagerAddon + WandBLoggerAddon, ``save_path=``, ``web_logger=``) with a
``metric_on_epoch_end`` reading ``np.mean(self.log_test["loss"])``; ``mgpu OUT`` runs the
MultiGPUAddon example (``device`` a list, ``init_method``: one DDP process per device) on
whatever devices there are: the CUDA GPUs, else two CPU entries (gloo). Both print one
``RESULT {json}`` line.
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, Dataset

from trainers.torch import (
    CosineAnnealingScheduler,
    MultiGPUAddon,
    StateManagerAddon,
    Trainer,
    WandBLoggerAddon,
)


class DummyDataset(Dataset):
    def __init__(self, size):
        self.data = torch.rand(size, 10)
        self.labels = (self.data.mean(dim=1) > 0.5).long()

    def __len__(self):
        return len(self.data)

    def __getitem__(self, idx):
        return self.data[idx], self.labels[idx]


class MultiGPUTrainer(Trainer.add_on(MultiGPUAddon)):
    def train_step(self, batch):
        data, labels = batch
        outputs = self.model(data)
        loss = nn.CrossEntropyLoss()(outputs, labels)
        return {'loss': loss}

    def test_step(self, batch):
        return self.train_step(batch)


class BasicTrainer(Trainer.add_on(StateManagerAddon, WandBLoggerAddon)):
    def train_step(self, batch):
        data, labels = batch
        return {'loss': nn.CrossEntropyLoss()(self.model(data), labels)}

    def test_step(self, batch):
        data, labels = batch
        outputs = self.model(data)
        return {'loss': nn.CrossEntropyLoss()(outputs, labels),
                'acc': (outputs.argmax(1) == labels).float().mean()}

    def metric_on_epoch_end(self):
        return {'mean_valid_loss': np.mean(self.log_test["loss"]),
                'train_batches': len(self.log_train["loss"])}


def basic(out):
    my_model = nn.Linear(10, 2)
    my_optimizer = optim.Adam(my_model.parameters(), lr=0.001)
    my_scheduler = CosineAnnealingScheduler(optimizer=my_optimizer, total_iters=10)
    train_loader = DataLoader(DummyDataset(200), batch_size=32, shuffle=True)
    valid_loader = DataLoader(DummyDataset(64), batch_size=32)
    trainer = BasicTrainer(
        model=my_model,
        device='cpu',
        mode='train',
        optimizer=my_optimizer,
        scheduler=my_scheduler,
        save_path=os.path.join(out, 'checkpoints'),
        web_logger={"wandb": {"project": "my_project"}},
    )
    trainer.run(n_epoch=2, loader=train_loader, valid_loader=valid_loader)
    return {"history": trainer.history, "log_train": trainer.log_train,
            "log_test": trainer.log_test, "checkpoints": sorted(os.listdir(
                os.path.join(out, 'checkpoints')))}


def mgpu(out):
    device_list = [torch.device(f'cuda:{i}') for i in range(torch.cuda.device_count())]
    if len(device_list) < 2:   # the guide asserts several GPUs; here: CPU (gloo's device)
        device_list = [torch.device('cpu'), torch.device('cpu')]
    dataset = DummyDataset(1000)
    train_loader = DataLoader(dataset, batch_size=32, shuffle=True)
    model = nn.Linear(10, 2)
    optimizer = optim.Adam(model.parameters(), lr=0.001)
    scheduler = CosineAnnealingScheduler(optimizer=optimizer, total_iters=100)
    trainer = MultiGPUTrainer(
        model=model,
        device=device_list,
        mode='train',
        optimizer=optimizer,
        scheduler=scheduler,
        init_method="tcp://localhost:12355"
    )
    trainer.run(n_epoch=2, loader=train_loader)
    torch.save(model.state_dict(), os.path.join(out, 'dummy_model_mgpu.pth'))
    return {"history": trainer.history, "device": str(trainer.device),
            "batches": len(trainer.log_train["loss"]), "processes": len(device_list)}


if __name__ == "__main__":
    which, folder = sys.argv[1], sys.argv[2]
    result = {"basic": basic, "mgpu": mgpu}[which](folder)
    print("RESULT " + json.dumps(result))
