"""The `aura-exporter` command: run, demo and check-config, with Prometheus-style flags."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from importlib import resources

from aura_exporter import __version__
from aura_exporter.clock import AcceleratedClock, WallClock
from aura_exporter.config import Analysis, Config, ConfigError, GraphAnalysis, load_config
from aura_exporter.durations import parse_duration
from aura_exporter.exposition.server import MAX_CONNECTIONS
from aura_exporter.exposition.webconfig import WebConfigFile
from aura_exporter.history import sharded_history
from aura_exporter.logs import LEVELS, setup_logging
from aura_exporter.probe import DEFAULT_LISTEN_ADDRESS
from aura_exporter.sources.shard import ShardedSource, ShardError, resolve_shard
from aura_exporter.storage import StorageError, prepare_storage

log = logging.getLogger("aura_exporter")


def _common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    common.add_argument("--log.format", dest="log_format", choices=("logfmt", "json"), default="logfmt")
    return common


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _serving_flags() -> argparse.ArgumentParser:
    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN_ADDRESS,
                         help="address to serve /metrics on (default %(default)s)")
    serving.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics")
    serving.add_argument("--web.config.file", dest="web_config_file", default=None,
                         help="exporter-toolkit web configuration: TLS and basic auth (default: none)")
    serving.add_argument("--web.enable-lifecycle", dest="lifecycle", action="store_true",
                         help="serve POST /-/reload (SIGHUP reloads either way; default off, as in Prometheus)")
    serving.add_argument("--web.max-connections", dest="max_connections", type=_positive_int, default=MAX_CONNECTIONS,
                         help="open HTTP connections at most; more are closed as they open (default %(default)s, "
                              "as in Prometheus)")
    serving.add_argument("--topology.workers", dest="workers", type=int, default=0,
                         help="processes computing persistence (default: one per CPU)")
    serving.add_argument("--storage.path", dest="storage", default="data",
                         help="directory for forecaster checkpoints (default %(default)s)")
    serving.add_argument("--shard.count", dest="shard_count", type=int, default=1,
                         help="replicas sharing the entities (default %(default)s: no sharding)")
    serving.add_argument("--shard.index", dest="shard_index", type=int, default=None,
                         help="this replica's shard, 0..count-1 (default: a StatefulSet pod's ordinal)")
    return serving


# backtest, evaluate and train flags before they took the dotted style of the others.
RENAMED_FLAGS = {"--analysis": "--analysis.name", "--from": "--history.from", "--to": "--history.to",
                 "--data": "--data.path", "--evidence": "--evidence.file", "--labels": "--labels.file",
                 "--backtest": "--backtest.dir", "--lead": "--evaluation.lead"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aura-exporter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aura-exporter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    common, serving = _common_flags(), _serving_flags()

    run = commands.add_parser("run", parents=[common, serving], help="analyse a live PromQL API")
    run.add_argument("--config.file", dest="config_file", required=True)

    demo = commands.add_parser("demo", parents=[common, serving],
                               help="analyse the embedded replay fleet; needs no Prometheus")
    demo.add_argument("--config.file", dest="config_file", default=None,
                      help="a config whose feature names are replay features (default: the built-in one)")
    demo.add_argument("--replay.hosts", dest="hosts", type=int, default=50)
    demo.add_argument("--replay.speed", dest="speed", type=float, default=30.0,
                      help="scenario seconds per wall-clock second (default %(default)s)")
    demo.add_argument("--replay.offset", dest="offset", type=parse_duration, default=0.0,
                      help="start this far into the scenario, e.g. 100m: the leak is under way (default 0s)")
    demo.add_argument("--replay.scenario", dest="scenario", choices=("failures", "healthy"), default="failures",
                      help="failures: a memory leak and a partition (default); healthy: no failure at all")

    train = commands.add_parser("train", parents=[common], help="train the forecasters on history, write checkpoints")
    train.add_argument("--config.file", dest="config_file", required=True)
    train.add_argument("--storage.path", dest="storage", default="data")
    train.add_argument("--analysis.name", dest="analysis", default=None, help="only this analysis (default: all)")
    train.add_argument("--history.source", dest="history_source", choices=("prometheus", "replay"),
                       default="prometheus", help="where history comes from (replay: the demo fleet)")

    backtest = commands.add_parser("backtest", parents=[common],
                                   help="replay an analysis over history (Prometheus or CSV files); write scores, "
                                        "alerts and a report")
    backtest.add_argument("--config.file", dest="config_file", required=True)
    backtest.add_argument("--analysis.name", dest="analysis", default=None, help="which analysis (default: the first)")
    backtest.add_argument("--history.from", dest="start", default=None, help="start, RFC 3339 (Prometheus history)")
    backtest.add_argument("--history.to", dest="end", default=None,
                          help="end, RFC 3339 (Prometheus history; default now)")
    backtest.add_argument("--data.path", dest="data", default=None,
                          help="CSV files (plain or .gz) instead of Prometheus: `timestamp,value` series, or one "
                               "`timestamp,<feature>,...` file per entity; a file or a folder of them")
    backtest.add_argument("--learn.until", dest="learn_until", default=None,
                          help="with --data.path: rows before this time (RFC 3339) are for learning (default: as a "
                               "`split` column says, else each file's first 15%%)")
    backtest.add_argument("--record.evidence", dest="record_evidence", action="store_true",
                          help="also write evidence.npz: what the agents saw each cycle, for --evidence.file")
    backtest.add_argument("--evidence.file", dest="evidence", default=None,
                          help="instead of replaying, run only the council (this configuration's settings) over "
                               "a recorded evidence.npz: seconds instead of minutes")
    backtest.add_argument("--labels.file", dest="labels", default=None,
                          help="incidents (NAB windows JSON or YAML) to shade in the report and label NAB files")
    backtest.add_argument("--output.dir", dest="output", default="backtest", help="(default %(default)s)")

    evaluate = commands.add_parser("evaluate", parents=[common],
                                   help="score a backtest against labeled incidents (NAB score, recall, "
                                        "false alerts, lead time)")
    evaluate.add_argument("--backtest.dir", dest="backtest", default="backtest", help="a backtest's --output.dir")
    evaluate.add_argument("--labels.file", dest="labels", required=True,
                          help="NAB windows JSON or a YAML incident list")
    evaluate.add_argument("--evaluation.lead", dest="lead", type=parse_duration, default=4 * 3600.0,
                          help="alerts this long before an incident count as catching it (default 4h)")

    check = commands.add_parser("check-config", parents=[common], help="validate a configuration file")
    check.add_argument("--config.file", dest="config_file", required=True)
    return parser


def _demo_config_path() -> str:
    return str(resources.files("aura_exporter") / "examples" / "demo.yml")


def _check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as err:
        for problem in err.problems:
            print(f"{err.source}: {problem}", file=sys.stderr)
        print(f"{err.source}: {len(err.problems)} problem(s) found", file=sys.stderr)
        return 1
    graphs = sum(isinstance(a, GraphAnalysis) for a in config.analyses)
    print(f"{path}: ok, {len(config.analyses)} analyses, "
          f"{sum(len(a.features) for a in config.analyses if isinstance(a, Analysis))} feature queries"
          + (f", {graphs} service graph(s)" if graphs else ""))
    return 0


async def _serve(config: Config, args: argparse.Namespace, web_config: WebConfigFile | None) -> None:
    from aura_exporter.clock import Clock
    from aura_exporter.exporter import Exporter
    from aura_exporter.sources.base import Source

    clock: Clock
    source: Source
    if args.command == "demo":
        from aura_exporter.sources.replay import HEALTHY, SCENARIO, ReplayFleet, ReplaySource

        clock = AcceleratedClock(args.speed)
        scenario = HEALTHY if args.scenario == "healthy" else SCENARIO
        fleet = ReplayFleet(hosts=args.hosts, origin=clock.origin - args.offset, scenario=scenario)
        source = ReplaySource(fleet)
        history = _replay_history(fleet)
    else:
        from aura_exporter.sources.promql import PromQLSource

        clock, source = WallClock(), PromQLSource(config.prometheus)
        history = _prometheus_history(config)
    shard = resolve_shard(args.shard_count, args.shard_index, socket.gethostname())
    if shard.count > 1:
        source, history = ShardedSource(source, shard), sharded_history(history, shard)
        log.info("sharded", extra={"shard": shard.index, "shard_count": shard.count})
    sources = None if args.command == "demo" else _sources_for(shard)
    exporter = Exporter(config, source, clock, args.listen_address, args.telemetry_path, args.workers or None,
                        history=history, storage=prepare_storage(args.storage), shard=shard,
                        config_path=args.config_file, sources=sources, web_config=web_config,
                        keep_baselines=args.command != "demo", learn_from_history=args.command != "demo",
                        lifecycle=args.lifecycle, max_connections=args.max_connections)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task] = set()  # keep a reference until each is done
    loop.add_signal_handler(signal.SIGHUP, lambda: _track(reloads, asyncio.ensure_future(exporter.reload())))
    await exporter.run(stop)


def _track(tasks: set[asyncio.Task], task: asyncio.Task) -> None:
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _sources_for(shard):
    """Rebuilds the PromQL source and history loader when a reload changes the `prometheus` section."""
    from aura_exporter.sources.promql import PromQLSource

    def build(config: Config):
        source, history = PromQLSource(config.prometheus), _prometheus_history(config)
        if shard.count > 1:
            return ShardedSource(source, shard), sharded_history(history, shard)
        return source, history

    return build


def _train(args: argparse.Namespace) -> int:
    """Train each analysis' forecaster in the foreground, with progress, and write its checkpoint."""
    import time

    from aura_exporter.forecast.checkpoint import checkpoint_path, describe, save_checkpoint
    from aura_exporter.forecast.manager import MOST_TRAINING_ENTITIES, train_on_history
    from aura_exporter.progress import progress_bar
    from aura_exporter.sources.replay import ReplayFleet

    try:
        config = load_config(args.config_file)
        storage = prepare_storage(args.storage)
    except (ConfigError, StorageError) as err:
        print(err, file=sys.stderr)
        return 1
    analyses = [a for a in config.analyses if args.analysis in (None, a.name) and isinstance(a, Analysis)]
    if not analyses:
        print(f"no metrics analysis named {args.analysis!r} in {args.config_file} (graphs have no forecaster)",
              file=sys.stderr)
        return 1
    end = time.time()
    load = (_replay_history(ReplayFleet(origin=end)) if args.history_source == "replay"
            else _prometheus_history(config, progress=progress_bar("fetching history", unit="chunk")))
    failures = 0
    for analysis in analyses:
        print(f"{analysis.name}: fetching {analysis.forecast.history / 86400:g} days of history", file=sys.stderr)
        try:
            history = load(analysis, end - analysis.forecast.history, end, most_entities=MOST_TRAINING_ENTITIES)
            state, report = train_on_history(analysis, history, progress=progress_bar("training", unit="epoch"))
        except Exception as err:  # report it and go on with the next analysis
            print(f"\n{analysis.name}: training failed: {err}", file=sys.stderr)
            failures += 1
            continue
        path = checkpoint_path(storage, analysis)
        save_checkpoint(path, analysis, state, {**describe(analysis), "trained_at": time.time(), "data_end": end})
        print(f"\n{analysis.name}: {report.epochs} epochs, held-out loss {report.validation_loss:.4f} "
              f"({report.stopped_because}, {report.seconds:.0f} s); wrote {path}", file=sys.stderr)
    return 1 if failures else 0


def _replay_history(fleet):
    from aura_exporter.history import replay_history

    return lambda analysis, start, end, most_entities=None: replay_history(fleet, analysis, start, end, most_entities)


def _prometheus_history(config: Config, progress=None):
    from aura_exporter.history import prometheus_history

    return lambda analysis, start, end, most_entities=None: prometheus_history(config.prometheus, analysis, start, end,
                                                                                progress, most_entities)


def renamed_flag(argv: list[str]) -> str | None:
    """A hint for a flag given in its old, undotted spelling (argparse would take some as abbreviations)."""
    for arg in argv:
        old = arg.split("=", 1)[0]
        if old in RENAMED_FLAGS:
            return f"{old} is now {RENAMED_FLAGS[old]} (flags are dotted, as Prometheus' are)"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    hint = renamed_flag(argv)
    if hint:
        parser.error(hint)
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.command == "check-config":
        return _check_config(args.config_file)
    if args.command == "train":
        return _train(args)
    if args.command == "backtest":
        from aura_exporter.backtest.command import main as backtest_main

        return backtest_main(args)
    if args.command == "evaluate":
        from aura_exporter.evaluation.command import main as evaluate_main

        return evaluate_main(args)
    path = args.config_file or _demo_config_path()
    try:
        config = load_config(path)
    except ConfigError as err:
        for problem in err.problems:
            log.error("invalid configuration", extra={"file": err.source, "problem": problem})
        return 1
    try:
        web_config = WebConfigFile(args.web_config_file) if args.web_config_file else None
    except ConfigError as err:
        for problem in err.problems:
            log.error("invalid web configuration", extra={"file": err.source, "problem": problem})
        return 1
    log.info("starting", extra={"version": __version__, "command": args.command, "config": path,
                                "analyses": len(config.analyses), "tls": bool(web_config and web_config.config.tls),
                                "basic_auth": bool(web_config and web_config.config.users)})
    try:
        asyncio.run(_serve(config, args, web_config))
    except (StorageError, ShardError) as err:
        log.error("cannot start", extra={"error": str(err)})
        return 1
    except OSError as err:  # e.g. the listen address is taken
        log.error("cannot serve", extra={"error": str(err)})
        return 1
    return 0
