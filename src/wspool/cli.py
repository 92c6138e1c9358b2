"""The ``wspool`` command: one console script, a subcommand per part.

Each command's flags come from its settings class (:mod:`wspool.core.options`); every flag
also reads the environment variable shown by ``--help`` (and in ``docs/configuration.md``).
A bad value exits with status 2 and one line naming the option, before anything listens.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from wspool import __version__
from wspool.bench.settings import BENCH_OPTIONS, SCENARIOS, BenchSettings
from wspool.client.messages import AuthenticationError, RequestError
from wspool.core import jsoninput
from wspool.core.config import (
    DEV_OPTIONS,
    GATEWAY_OPTIONS,
    SERVER_OPTIONS,
    DevSettings,
    GatewaySettings,
    ServerSettings,
)
from wspool.core.jsoninput import MAX_BODY_BYTES
from wspool.core.logs import configure_logging
from wspool.core.options import (
    ConfigError,
    Option,
    default_text,
    deprecated_variables,
    load_settings,
)
from wspool.operator.model.settings import OPERATOR_OPTIONS, OperatorSettings

__all__ = ["COMMAND_OPTIONS", "main"]

PUBLISH_URL = "http://127.0.0.1:8080"
PUBLISH_URL_ENV = "WSPOOL_URL"
PUBLISH_TOKEN_ENV = "WSPOOL_API_TOKEN"
"""Where ``wspool publish`` sends, and the variable holding its token (never a flag: ``ps``
shows flags)."""

COMMAND_OPTIONS: dict[str, tuple[type[Any], Sequence[Option]]] = {
    "dev": (DevSettings, DEV_OPTIONS),
    "server": (ServerSettings, SERVER_OPTIONS),
    "gateway": (GatewaySettings, GATEWAY_OPTIONS),
    "operator": (OperatorSettings, OPERATOR_OPTIONS),
    "bench": (BenchSettings, BENCH_OPTIONS),
}
"""Each command's settings class and options, in the order ``--help`` lists the commands."""


def _add_options(parser: argparse.ArgumentParser, command: str) -> None:
    settings, options = COMMAND_OPTIONS[command]
    defaults = settings()
    for option in options:
        default = default_text(option, defaults)
        shown = f"; default {default}" if default else ""
        help_text = f"{option.help} [${option.env}{shown}]"
        if option.switch:
            parser.add_argument(
                option.flag, dest=option.field, action="store_const", const="true", help=help_text
            )
            continue
        parser.add_argument(
            option.flag,
            dest=option.field,
            metavar=option.metavar,
            help=help_text,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wspool",
        description="WebSocket infrastructure with connection pooling.",
    )
    parser.add_argument("--version", action="version", version=f"wspool {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = commands.add_parser(
        "dev", help="the whole data plane in one process, on the in-memory engine"
    )
    _add_options(dev, "dev")
    server = commands.add_parser("server", help="one server node of the WebSocket farm")
    _add_options(server, "server")
    gateway = commands.add_parser(
        "gateway", help="the gateway: load balancer, pool manager, health monitor, REST API"
    )
    _add_options(gateway, "gateway")
    operator = commands.add_parser(
        "operator",
        help="the Kubernetes operator: reconcile WebSocketPool resources (docs/operator.md)",
    )
    _add_options(operator, "operator")
    bench = commands.add_parser(
        "bench",
        help="the load generator: measure nodes on this machine",
        description="Load WebSocket nodes on this machine and report what they sustain "
        "(docs/benchmarks.md). Scenarios run in the order given.",
    )
    bench.add_argument(
        "scenarios",
        nargs="+",
        choices=SCENARIOS,
        metavar="SCENARIO",
        help=f"one or more of: {', '.join(SCENARIOS)}",
    )
    _add_options(bench, "bench")
    publish = commands.add_parser(
        "publish",
        help="publish one message through a gateway's REST API (docs/server-api.md)",
        description="Publish one message on a channel and print its offset. The token "
        "(the admin token, or one allowed to publish on the channel) comes from "
        f"${PUBLISH_TOKEN_ENV} or --token-file.",
    )
    publish.add_argument("channel", metavar="CHANNEL")
    publish.add_argument("payload", metavar="JSON", help="the message's payload, as JSON")
    publish.add_argument(
        "--url",
        default=os.environ.get(PUBLISH_URL_ENV, PUBLISH_URL),
        help=f"the gateway [${PUBLISH_URL_ENV}; default {PUBLISH_URL}]",
    )
    publish.add_argument("--token-file", metavar="PATH", help="a file holding the token")
    return parser


def _run_dev(flags: dict[str, Any]) -> Coroutine[Any, Any, None]:
    from wspool.dev import run_dev

    settings = load_settings(DevSettings, DEV_OPTIONS, flags)
    configure_logging(settings.log_format, settings.log_level)
    return run_dev(settings)


def _run_server(flags: dict[str, Any]) -> Coroutine[Any, Any, None]:
    from wspool.server.main import run_server

    settings = load_settings(ServerSettings, SERVER_OPTIONS, flags)
    security = settings.security.read_files(_read_text)
    security.verifier()  # refuse a missing or unusable key before anything listens
    configure_logging(settings.log_format, settings.log_level)
    return run_server(dataclasses.replace(settings, security=security))


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def _run_gateway(flags: dict[str, Any]) -> Coroutine[Any, Any, None]:
    from wspool.gateway.main import run_gateway

    settings = load_settings(GatewaySettings, GATEWAY_OPTIONS, flags)
    settings.require_nodes_source()
    security = settings.security.read_files(_read_text)
    security.api_policy()  # refuse a missing or unusable key before anything listens
    configure_logging(settings.log_format, settings.log_level)
    return run_gateway(dataclasses.replace(settings, security=security))


def _run_operator(flags: dict[str, Any]) -> Coroutine[Any, Any, None]:
    from wspool.operator.main import run_operator

    settings = load_settings(OperatorSettings, OPERATOR_OPTIONS, flags)
    configure_logging(settings.log_format, settings.log_level)
    return run_operator(settings)


def _run_bench(flags: dict[str, Any]) -> Coroutine[Any, Any, None]:
    from wspool.bench.peers import install_peer
    from wspool.bench.runner import run_bench

    scenarios = flags.pop("scenarios")
    settings = load_settings(BenchSettings, BENCH_OPTIONS, flags)
    settings.check_scenarios(scenarios)
    if settings.peer:
        install_peer(settings.peer)  # before anything starts: a missing tool is one line
    return run_bench(settings, scenarios)


def _run_publish(flags: dict[str, Any]) -> Coroutine[Any, Any, None]:
    from wspool.client.publisher import Publisher

    try:
        payload = jsoninput.loads(flags["payload"], max_bytes=MAX_BODY_BYTES, what="JSON")
    except jsoninput.JsonInputError as error:
        raise ConfigError("JSON", str(error)) from None
    token = os.environ.get(PUBLISH_TOKEN_ENV) or None
    if flags["token_file"]:
        try:
            token = _read_text(flags["token_file"]).strip()
        except OSError as error:
            raise ConfigError("--token-file", error.strerror or str(error)) from None

    async def publish() -> None:
        async with Publisher(flags["url"], token=token) as publisher:
            print(await publisher.publish(flags["channel"], payload))

    return publish()


_COMMANDS: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, None]]] = {
    "dev": _run_dev,
    "server": _run_server,
    "gateway": _run_gateway,
    "operator": _run_operator,
    "bench": _run_bench,
    "publish": _run_publish,
}

_ON_UVLOOP = frozenset({"gateway", "server"})
"""Commands run on uvloop (see :func:`wspool.runtime.run`)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    options = COMMAND_OPTIONS[args.command][1] if args.command in COMMAND_OPTIONS else ()
    for notice in deprecated_variables(options, os.environ):
        print(f"wspool {args.command}: {notice}", file=sys.stderr)
    try:
        coroutine = _COMMANDS[args.command](flags)
    except ConfigError as error:
        print(f"wspool {args.command}: {error}", file=sys.stderr)
        return 2
    from wspool.runtime import run  # with the parts' dependencies, which a command needs

    try:
        run(coroutine, uvloop=args.command in _ON_UVLOOP)
    except OSError as error:  # typically the port is taken
        print(f"wspool {args.command}: {error.strerror or error}", file=sys.stderr)
        return 1
    except (RequestError, AuthenticationError) as error:  # the pool refused a publish
        print(f"wspool {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
