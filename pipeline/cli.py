"""The ``voicelake`` console script: one subcommand per job, each module owning its arguments."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module with ``main(argv)``, or ``module:function``, one-line help)
SUBCOMMANDS = {
    "run": ("pipeline.run", "run the pipeline for a date or date range"),
    "export": ("pipeline.export", "write ML training sets (Hugging Face, lhotse, NeMo) from the lake"),
    "demo": ("runners.local.demo", "seed a local S3 + KVS world and run the pipeline on it"),
    "extract": ("pipeline.extract", "extract per-track WAV and a summary from a saved KVS body"),
    "ddl": ("schemas.athena", "print Athena CREATE EXTERNAL TABLE statements"),
    "forget": ("pipeline.lifecycle:forget_main", "remove calls from the lake (erasure); no later run lands them"),
    "expire": ("pipeline.lifecycle:expire_main", "remove the lake's dates older than a number of days"),
    "report": ("pipeline.report", "write an HTML page of the runs' numbers and the lake's figures"),
    "kvs-emulator": ("runners.local.kvs_emulator", "serve a local Kinesis Video Streams emulator"),
}


def usage() -> str:
    lines = ["usage: voicelake <command> [options]", "", "commands:"]
    lines += [f"  {name:<14}{help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "voicelake <command> --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"voicelake: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, _, function = SUBCOMMANDS[name][0].partition(":")
    return int(getattr(importlib.import_module(module), function or "main")(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
