"""What every script shares: --params/--log arguments, logging to the rule's log, one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from whisperbench import config
from whisperbench.errors import UserError, cli

__all__ = ["UserError", "cli", "parser", "start"]

log = logging.getLogger("whisperbench")


def parser(description: str) -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--params", default="params.yaml", help="the study config (default: params.yaml)")
    arguments.add_argument("--log", type=Path, help="also write this step's log here")
    arguments.add_argument("--quiet", action="store_true", help="no progress bars")
    return arguments


def model_arguments(arguments: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments naming what a build step starts from: the fetched model, its id and the backend."""
    arguments.add_argument("--model-dir", required=True, help="fetched model folder")
    arguments.add_argument("--model", required=True)
    arguments.add_argument("--backend", required=True)
    return arguments


def start(arguments: argparse.Namespace) -> dict:
    """Set up logging (console + the step's log file) and return the validated params (a step of one
    backend probes only that backend's support on this machine: see `config.validate`)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if arguments.log:
        arguments.log.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(arguments.log, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)
    for noisy in ("torchao", "torch", "optimum", "transformers"):  # import-time chatter about GPU kernels
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*register_constant.*")
    log.info("command: %s", " ".join(sys.argv))
    backend = getattr(arguments, "backend", None)
    return config.load(arguments.params, {backend} if backend else None)
