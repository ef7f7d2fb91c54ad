"""Flags in either spelling: the seed's `--no_ui`, ours `--num-gpus`; a near miss is named."""

import pytest

from orchestrator.cli.main import build_parser


@pytest.mark.parametrize("argv", [
    ["run", "q.csv", "--no_ui", "--num_gpus", "2", "--check_interval=3", "--create_config",
     "m.ini", "--no-auto_continue"],
    ["run", "q.csv", "--no-ui", "--num-gpus", "2", "--check-interval", "3", "--create-config",
     "m.ini", "--no-auto-continue"],
])
def test_dashes_and_underscores_are_the_same_flag(argv):
    args = build_parser().parse_args(argv)
    assert (args.no_ui, args.num_gpus, args.check_interval, args.create_config,
            args.auto_continue) == (True, 2.0, 3.0, "m.ini", False)


def test_values_keep_their_underscores():
    args = build_parser().parse_args(["sweep", "run", "s.yaml", "--pretrained_path",
                                      "my_model.pt", "--program", "python t.py --lr_max 1"])
    assert args.pretrained_path == "my_model.pt" and args.program == "python t.py --lr_max 1"


def test_help_shows_dashes():
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "--no-ui" in text and "--check-interval" in text and "--no_ui" not in text


def test_an_unknown_flag_gets_the_nearest_real_one(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["run", "q.csv", "--no-iu"])
    assert info.value.code == 2
    assert "unrecognized arguments: --no-iu (--no-iu: did you mean --no-ui?)" in \
        capsys.readouterr().err
