"""trainers.torch without Ray: the Trainer, its add-ons, weights, and the Kind=ddp config."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainers.errors import ConfigError
from trainers.torch import MultiGPUAddon, StateManagerAddon, Trainer, WandBLoggerAddon
from trainers.torch.config import load, metric

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _example():
    """examples/ddp_dummy.py, imported without putting examples/ on sys.path."""
    spec = importlib.util.spec_from_file_location("ddp_dummy", EXAMPLES / "ddp_dummy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_dummy = _example()
DummyTrainer, build, make_data = _dummy.DummyTrainer, _dummy.build, _dummy.make_data

torch.set_num_threads(1)


def parts(scheduler: bool = True, **params) -> dict:
    built = build({"samples": 128, "batch_size": 32, **params})
    if not scheduler:
        built["scheduler"] = None
    return built


def trainer_for(built: dict, cls=DummyTrainer, **kwargs) -> Trainer:
    return cls(built["model"], "cpu", optimizer=built["optimizer"], scheduler=built["scheduler"],
               log_bar=False, **kwargs)


def run(trainer: Trainer, built: dict, epochs: int) -> list[dict]:
    return trainer.run(epochs, built["train_loader"], built["valid_loader"])


# -- the Trainer ---------------------------------------------------------------------------------

def test_dummy_example_loss_falls_and_logs_average_step_outputs():
    built = parts()
    history = run(trainer_for(built), built, 4)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    assert 0.0 <= history[-1]["valid_acc"] <= 1.0 and history[-1]["valid_acc"] > 0.7
    assert set(history[0]) == {"epoch", "train_loss", "valid_loss", "valid_acc", "lr"}


def test_test_mode_only_evaluates():
    built = parts()
    before = [p.clone() for p in built["model"].parameters()]
    trainer = DummyTrainer(built["model"], "cpu", mode="test", log_bar=False)
    logs = trainer.run(3, built["valid_loader"])
    assert set(logs[0]) == {"valid_loss", "valid_acc"} and trainer.epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(before, built["model"].parameters(),
                                                 strict=True))


def test_metric_on_epoch_end_adds_to_the_logs():
    class WithMetric(DummyTrainer):
        def metric_on_epoch_end(self):
            return {"weight_norm": float(self.model.weight.detach().norm())}

    built = parts()
    history = run(trainer_for(built, WithMetric), built, 2)
    assert history[1]["weight_norm"] == pytest.approx(
        float(built["model"].weight.detach().norm()))


@pytest.mark.parametrize("step", ["epoch", "batch"])
def test_scheduler_steps_per_epoch_or_per_batch(step):
    built = parts(t_max=10)
    batches = len(built["train_loader"])
    history = run(trainer_for(built, scheduler_step=step), built, 3)
    # the same schedule stepped by hand: once per epoch, or once per batch
    reference = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=10)
    reference.step()
    expected = []
    for _ in range(3):
        if step == "epoch":   # logged: the lr the epoch trained with, then one step
            expected.append(reference.param_groups[0]["lr"])
            cosine.step()
        else:                 # logged: the lr after the epoch's last batch step
            for _ in range(batches):
                cosine.step()
            expected.append(reference.param_groups[0]["lr"])
    assert [h["lr"] for h in history] == pytest.approx(expected)
    assert batches == 4 and expected[0] != expected[1]


def test_gradient_clip_bounds_the_gradient_norm():
    class Recording(DummyTrainer):
        norms: list

        def optimizer_step(self):
            grads = [p.grad.norm() for p in self.model.parameters()]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack(grads))))
            super().optimizer_step()

    def norms(clip: float) -> list[float]:
        built = parts()
        with torch.no_grad():
            built["model"].weight.mul_(50)  # large logits, large gradients
        trainer = trainer_for(built, Recording, gradient_clip=clip)
        trainer.norms = []
        run(trainer, built, 1)
        return trainer.norms

    assert max(norms(0)) > 0.05          # unclipped they are larger than the bound
    assert max(norms(0.05)) <= 0.05 + 1e-6


def test_add_on_returns_a_new_class_and_leaves_trainer_alone():
    mro = Trainer.__mro__
    mixed = DummyTrainer.add_on(StateManagerAddon, WandBLoggerAddon)
    assert mixed is not DummyTrainer and Trainer.__mro__ == mro
    order = [mixed.__mro__.index(c) for c in (StateManagerAddon, WandBLoggerAddon, DummyTrainer)]
    assert order == sorted(order)   # add-ons first, in the order given
    assert not issubclass(DummyTrainer, StateManagerAddon)
    assert mixed.add_on(StateManagerAddon) is mixed
    with pytest.raises(TypeError, match="not an AddOn"):
        Trainer.add_on(nn.Linear)


def test_multi_gpu_addon_is_a_no_op_outside_ray_train():
    built = parts()
    trainer = trainer_for(built, DummyTrainer.add_on(MultiGPUAddon))
    assert trainer.model is built["model"] and (trainer.rank, trainer.world_size) == (0, 1)
    assert run(trainer, built, 1)[0]["train_loss"] > 0


# -- checkpoints and weights ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt, files", [("ckpt", {"checkpoint.ckpt"}),
                                        ("safetensors", {"model.safetensors",
                                                         "training_state.pt"})])
def test_state_manager_keeps_k_and_a_new_trainer_resumes(tmp_path, fmt, files):
    cls = DummyTrainer.add_on(StateManagerAddon)
    options = dict(checkpoint_dir=tmp_path, num_to_keep=2, checkpoint_format=fmt)
    built = parts()
    first = trainer_for(built, cls, **options)
    run(first, built, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0002", "epoch_0003"]
    assert {p.name for p in (tmp_path / "epoch_0003").iterdir()} == files

    class Counting(cls):
        epochs_run: list

        def on_epoch_start(self, epoch):
            super().on_epoch_start(epoch)
            self.epochs_run.append(epoch)

    again = parts(seed=7)   # a different initialisation: everything must come from the checkpoint
    second = trainer_for(again, Counting, **options)
    second.epochs_run = []
    assert second.resume_latest() and second.epoch == 3
    state_a, state_b = first.optimizer.state_dict(), second.optimizer.state_dict()
    for key in state_a["state"]:
        assert torch.equal(state_a["state"][key]["exp_avg"], state_b["state"][key]["exp_avg"])
    assert torch.equal(first.module.weight, second.module.weight)
    assert second.scheduler.last_epoch == first.scheduler.last_epoch == 3
    history = run(second, again, 5)
    assert second.epochs_run == [3, 4]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0004", "epoch_0005"]


def test_state_manager_copes_with_no_scheduler(tmp_path):
    cls = DummyTrainer.add_on(StateManagerAddon)
    built = parts(scheduler=False)
    run(trainer_for(built, cls, checkpoint_dir=tmp_path), built, 2)
    again = parts(scheduler=False)
    resumed = trainer_for(again, cls, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in run(resumed, again, 3)] == [1, 2, 3]


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_save_and_load_weights(tmp_path, name):
    built = parts()
    trainer = trainer_for(built)
    run(trainer, built, 1)
    path = trainer.save(tmp_path / name)
    fresh = parts(seed=3)
    other = trainer_for(fresh)
    assert not torch.equal(other.module.weight, trainer.module.weight)
    other.load(path)
    assert torch.equal(other.module.weight, trainer.module.weight)
    other.load(tmp_path)   # a folder holding the weights works too


# -- wandb ----------------------------------------------------------------------------------------

def test_wandb_logger_offline_and_disabled(tmp_path, monkeypatch):
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_RUN_ID", "ddp-unit-1")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cls = DummyTrainer.add_on(WandBLoggerAddon)
    built = parts()
    run(trainer_for(built, cls, wandb_config={"project": "unit"}), built, 2)
    runs = list((tmp_path / "wandb").glob("offline-run-*-ddp-unit-1"))
    assert runs and list(runs[0].glob("*.wandb"))

    monkeypatch.setenv("WANDB_RUN_ID", "ddp-unit-2")
    off = trainer_for(built, cls, wandb_config={"enabled": False, "project": "unit"})
    run(off, built, 1)
    assert off.wandb_run is None
    assert not list((tmp_path / "wandb").glob("*ddp-unit-2"))


# -- the Kind=ddp config ---------------------------------------------------------------------------

def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "row.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads_and_names_its_metric():
    cfg = load(EXAMPLES / "ddp_dummy.yaml")
    assert (cfg.entry, cfg.build, cfg.epochs) == ("ddp_dummy:DummyTrainer", "ddp_dummy:build", 5)
    assert cfg.python_path == (str(EXAMPLES),) and cfg.checkpoint_format == "ckpt"
    assert metric(cfg) == ("valid_loss", "min")


def test_a_halve_batch_retry_divides_params_batch_size():
    assert load(EXAMPLES / "ddp_dummy.yaml", environ={}).params["batch_size"] == 32
    cfg = load(EXAMPLES / "ddp_dummy.yaml", environ={"ORCH_BATCH_DIVISOR": "4"})
    assert cfg.params["batch_size"] == 8 and cfg.params["lr"] == 0.01
    assert load(EXAMPLES / "ddp_dummy.yaml",
                environ={"ORCH_BATCH_DIVISOR": "64"}).params["batch_size"] == 1


def test_config_defaults_and_goal_from_the_metric_name(tmp_path):
    cfg = load(write(tmp_path, "entry: m:train\nmetric: valid_acc\n"))
    assert metric(cfg) == ("valid_acc", "max")
    assert (cfg.epochs, cfg.num_to_keep, cfg.max_failures, cfg.wandb.enabled) == (1, 2, 1, False)
    assert cfg.python_path == (str(tmp_path.resolve()),)


@pytest.mark.parametrize("text, expected", [
    ("entry: m:T\nepoch: 3\n", r"epoch.*did you mean epochs\? valid keys: entry, build"),
    ("entry: m:T\ncheckpoint: {num_keep: 2}\n", r"checkpoint.num_keep.*did you mean "
                                                r"checkpoint.num_to_keep"),
    ("entry: my_module.MyTrainer\n", r"entry = 'my_module.MyTrainer': must be 'module:name'"),
    ("build: m:b\n", r"entry: is missing"),
    ("entry: m:T\ncheckpoint: {format: pickle}\n", r"checkpoint.format.*ckpt, safetensors"),
    ("entry: m:T\nscheduler_step: step\n", r"scheduler_step.*epoch, batch"),
    ("entry: m:T\nepochs: 0\n", r"epochs = 0: must be a whole number >= 1"),
    ("entry: m:T\npython_path: [nope]\n", r"python_path = 'nope'.*does not exist"),
    ("entry: m:T\nwandb: {enabled: true, projekt: x}\n", r"did you mean wandb.project"),
    ("- a list\n", r"must be a mapping"),
])
def test_config_errors_are_clear(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load(path)
    assert str(path.resolve()) in str(info.value)


def test_config_module_does_not_import_torch():
    code = ("import sys, trainers.torch.config as c; "
            "c.load(sys.argv[1]); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(EXAMPLES / "ddp_dummy.yaml")], check=True,
                   cwd=ROOT)


# -- the entry point's errors (before Ray starts) -----------------------------------------------

def run_main(capsys, *argv: str) -> tuple[int, str]:
    from trainers.torch.__main__ import main

    code = main(list(argv))
    return code, capsys.readouterr().err


def test_entry_point_rejects_a_bad_config(tmp_path, capsys):
    code, err = run_main(capsys, str(write(tmp_path, "entry: m:T\nepohcs: 2\n")))
    assert code == 1 and err.startswith("error: ") and "did you mean epochs?" in err
    assert len(err.strip().splitlines()) == 1


def test_entry_point_names_the_sys_path_when_the_entry_does_not_import(tmp_path, capsys):
    code, err = run_main(capsys, str(write(tmp_path, "entry: not_there:Trainer\n")))
    assert code == 1 and "cannot import 'not_there'" in err and str(tmp_path.resolve()) in err
    assert "python_path" in err


def test_entry_point_reports_a_module_that_fails_on_import(tmp_path, capsys):
    (tmp_path / "crashing.py").write_text("def broken(:\n")
    code, err = run_main(capsys, str(write(tmp_path, "entry: crashing:train\n")))
    assert code == 1 and err.startswith("error: cannot import 'crashing'") and "SyntaxError" in err
    assert len(err.strip().splitlines()) == 1


def test_entry_point_wants_build_for_a_trainer_class(tmp_path, capsys):
    (tmp_path / "mine.py").write_text("from trainers.torch import Trainer\n"
                                      "class Mine(Trainer):\n    pass\n")
    code, err = run_main(capsys, str(write(tmp_path, "entry: mine:Mine\n")))
    assert code == 1 and "is a Trainer class" in err and "build:" in err


def test_empty_loader_epoch_does_not_divide_by_zero():
    built = parts(scheduler=False)
    trainer = trainer_for(built)
    logs = trainer.run(1, DataLoader(make_data(0), batch_size=4))
    assert logs[0]["epoch"] == 1 and not any(math.isnan(v) for v in logs[0].values())


# -- the add-on Trainer's own examples, as its users wrote them --------------------------------

def _seed_example(which: str, tmp_path) -> tuple[dict, str]:
    env = {**__import__("os").environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / "addon_trainer_seed.py"), which,
                           str(tmp_path)], capture_output=True, text=True, timeout=180,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    return __import__("json").loads(line[len("RESULT "):]), done.stderr


def test_the_guides_basic_example_runs_with_its_keywords_and_per_batch_logs(tmp_path):
    """save_path=, web_logger={"wandb": ...}; log_train / log_test hold the epoch's
    per-batch values (np.mean(self.log_test["loss"]) in metric_on_epoch_end)."""
    result, _ = _seed_example("basic", tmp_path)
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert result["log_train"].keys() == {"loss"} and len(result["log_train"]["loss"]) == 7
    assert result["log_test"].keys() == {"loss", "acc"} and len(result["log_test"]["loss"]) == 2
    assert history[-1]["mean_valid_loss"] == pytest.approx(history[-1]["valid_loss"])
    assert history[-1]["train_batches"] == 7
    assert history[-1]["train_loss"] == pytest.approx(
        sum(result["log_train"]["loss"]) / 7), "the averages are kept under their own name"
    assert result["checkpoints"] == ["epoch_0001", "epoch_0002"], "save_path is the folder"
    assert list(tmp_path.glob("wandb/offline-run-*")), "web_logger's wandb project logged"


def test_the_guides_multi_gpu_example_runs_with_a_device_list_and_init_method(tmp_path):
    result, stderr = _seed_example("mgpu", tmp_path)
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert stderr.count("Ray's process group") == 1, "said once, never an error"
    assert "one process per device (DDP)" in stderr
    per_rank = math.ceil(1000 / result["processes"] / 32)
    assert result["batches"] == per_rank, "each device's process read its share of the data"
    assert (tmp_path / "dummy_model_mgpu.pth").exists()


def test_scheduler_step_on_batch_and_callbacks():
    built = parts()
    calls = []
    trainer = trainer_for(built, scheduler_step_on_batch=True,
                          callbacks=[lambda t: calls.append((t.epoch, len(t.log_train["loss"])))])
    assert trainer.scheduler_step == "batch"
    run(trainer, built, 2)
    assert calls == [(1, 4), (2, 4)], "each callback gets the trainer once per epoch"


def test_the_guides_cosine_scheduler_takes_its_keywords():
    """zae_engine.schedulers.CosineAnnealingScheduler(optimizer=..., total_iters=...)."""
    from trainers.torch import CosineAnnealingScheduler

    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    scheduler = CosineAnnealingScheduler(optimizer=opt, total_iters=4)
    lrs = []
    for _ in range(4):
        opt.step()
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[1] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="total_iters=0"):
        CosineAnnealingScheduler(optimizer=opt, total_iters=0)


# -- MultiGPUAddon outside Ray Train: one process per device -------------------------------------

class PlainTrainer(Trainer):
    """Defined here (importable by name): the processes MultiGPUAddon spawns unpickle it."""

    def train_step(self, batch):
        x, y = batch
        return {"loss": nn.functional.cross_entropy(self.model(x), y)}

    def test_step(self, batch):
        return self.train_step(batch)


def _data(n=128):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 10, generator=g)
    return torch.utils.data.TensorDataset(x, (x.mean(1) > 0.5).long())


def _sgd_run(devices, batch_size, cls):
    torch.manual_seed(1)
    model = nn.Linear(10, 2)
    trainer = cls(model, devices, optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
                  log_bar=False)
    history = trainer.run(2, DataLoader(_data(), batch_size=batch_size),
                          DataLoader(_data(64), batch_size=batch_size))
    return model, trainer, history


def test_multi_gpu_addon_outside_ray_trains_one_ddp_process_per_device(capfd):
    """Two CPU devices (gloo): each process reads half the data and DDP averages the
    gradients, so the weights equal one process's with twice the batch — and they come
    back into the model the caller passed (the add-on Trainer left them in its workers)."""
    mixed = PlainTrainer.add_on(MultiGPUAddon)   # no importable name: pickled as the mix
    model, trainer, history = _sgd_run(["cpu", "cpu"], 32, mixed)
    assert "one process per device (DDP)" in capfd.readouterr().err
    single, _, single_history = _sgd_run("cpu", 64, PlainTrainer)
    for name, value in single.state_dict().items():
        assert torch.allclose(model.state_dict()[name], value, atol=1e-5), name
    assert len(trainer.log_train["loss"]) == 2, "each rank read 64 of the 128 samples"
    assert [h["epoch"] for h in history] == [1, 2] and trainer.epoch == 2
    assert history[-1]["valid_loss"] == pytest.approx(single_history[-1]["valid_loss"],
                                                      abs=1e-5), "logs averaged over ranks"


def test_multi_gpu_addon_says_what_to_change_when_the_trainer_does_not_pickle():
    model = nn.Linear(10, 2)
    trainer = PlainTrainer.add_on(MultiGPUAddon)(
        model, ["cpu", "cpu"], optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        log_bar=False, callbacks=[lambda t: None])
    with pytest.raises(RuntimeError, match="must pickle.*at module level"):
        trainer.run(1, DataLoader(_data(), batch_size=32))
