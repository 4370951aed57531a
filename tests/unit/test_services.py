"""The service registry (infra/services.py) and the supervisord configuration rendered from it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from infra import supervisor
from infra.cli import build_parser
from infra.services import SERVICES, Health, Service, by_name, enabled, start_order
from infra.settings import Settings, StreamSettings

pytestmark = pytest.mark.unit


def cli_commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices)


def test_every_enabled_service_command_parses_as_a_sentinel_subcommand():
    parser = build_parser()
    for service in enabled(cli_commands()):
        args = parser.parse_args(list(service.argv))
        assert args.command == service.argv[0], service.name


def test_a_slot_is_off_until_its_subcommand_exists():
    names = {s.name for s in enabled({"gateway", "worker"})}
    assert "console" not in names and "gateway" in names
    assert "console" in {s.name for s in enabled({"console"})}


def test_dependencies_start_first_and_cycles_are_refused():
    order = [s.name for s in start_order(list(SERVICES))]
    assert order.index("gateway") < order.index("console")
    a = Service("a", ("x",), Health("running"), ("b",))
    b = Service("b", ("x",), Health("running"), ("a",))
    with pytest.raises(ValueError, match="cycle"):
        start_order([a, b])


def _options(tmp_path: Path, env: dict) -> ServerOptions:
    settings = Settings(stream=StreamSettings(data_dir=tmp_path / "d%ta"))
    for folder in (supervisor.log_dir(settings), supervisor.home(settings)):
        folder.mkdir(parents=True)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(supervisor.render(settings, list(SERVICES), env))
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])  # supervisord's own parser
    return options


def test_rendered_config_runs_each_service_supervised_with_its_own_log(tmp_path):
    options = _options(tmp_path, {"chain-listener": {"EVM_CONTRACTS": "0xabc"}})
    programs = {g.name: g.process_configs[0] for g in options.process_group_configs}
    assert list(programs) == [s.name for s in start_order(list(SERVICES))]
    for name, program in programs.items():
        argv = [sys.executable, "-m", "infra.cli", *by_name()[name].argv]
        assert shlex.split(program.command) == argv
        assert program.stdout_logfile == str(tmp_path / "d%ta" / "logs" / f"{name}.log")
        assert program.redirect_stderr and program.stopasgroup and program.killasgroup
        assert program.autorestart is not False and program.startretries > 0
    assert programs["chain-listener"].environment["EVM_CONTRACTS"] == "0xabc"
    assert "EVM_CONTRACTS" not in programs["gateway"].environment
