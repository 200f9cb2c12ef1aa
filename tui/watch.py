"""The engines to watch and the monitors that watch them, made from the settings in one place.

The configuration is applied here, once: each engine gets its read-only switch, each monitor
its detection rules and sampling interval, and its GPU source: an ssh:// engine's monitor its
own `RemoteGpuSampler` (that machine's nvidia-smi over the engine's ssh connection), all the
others one NVML sampler of this machine. No Textual: the command line starts the monitors
before the UI has loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from tui.config import Config
from tui.fleet.engine.client import Engine
from tui.fleet.gpu.remote import remote_gpu_source
from tui.fleet.gpu.sampler import GpuSampler
from tui.fleet.monitor import FleetMonitor


def engines_for(chosen: Sequence[tuple[str | None, str]], config: Config) -> list[Engine]:
    """An engine for each (URL, where it came from) of `choose_hosts`; None: the default one."""
    engines = []
    for url, source in chosen:
        engine = Engine(url)
        if url is not None:
            engine.url_source = source
        engine.read_only = config.read_only
        engines.append(engine)
    return engines


def monitors_for(
    engines: Sequence[Engine], config: Config, *, gpu: GpuSampler | None = None
) -> list[FleetMonitor]:
    """A monitor for each engine, sampling at `config.refresh`, with the file's detection rules.

    An ssh:// engine's GPUs are read on its machine, every `config.refresh.gpu` seconds, over
    its own ssh connection. One NVML sampler serves all the others (`gpu`, else a new one): it
    throttles itself, so several engines together read NVML once a tick.
    """
    shared = gpu if gpu is not None else GpuSampler(min_interval=config.refresh.gpu)
    rules = config.detection_rules()
    return [
        FleetMonitor(
            engine,
            rules=rules,
            interval=config.refresh.fleet,
            gpu=remote_gpu_source(engine.url, min_interval=config.refresh.gpu) or shared,
        )
        for engine in engines
    ]
