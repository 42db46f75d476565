"""``python -m local``: run the whole gallery on this machine (``make demo``).

Everything runs in this one process (moto and the Graph API stand-in serve
from threads), so Ctrl-C or SIGTERM stops all of it and leaves nothing behind.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402 (the clock above must include the imports)
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType  # noqa: E402

from local.stack import LocalStack, StackError, StackOptions  # noqa: E402

_DESCRIPTION = """\
Run the charter gallery locally: an embedded moto server (DynamoDB, S3,
Secrets Manager), a stand-in for the Instagram Graph API and its CDN serving
sample posts, sample guest uploads, an ingest run, and the gallery served by
the real serve handler at http://127.0.0.1:PORT/g/<event_id>.
No AWS account and no Instagram token are needed. Ctrl-C stops everything."""

_EPILOG = """\
examples:
  python -m local                          sample data, nothing leaves this machine
  python -m local --port 0                 any free port
  IG_ACCESS_TOKEN=IGAA... python -m local --real-instagram
                                           try a real token (posts land in moto)
  MEDIA_TABLE=... MEDIA_BUCKET=... TOKEN_SECRET_ID=... \\
    python -m local --real-aws --no-ingest  browse the deployed data locally"""


def parse_args(argv: list[str] | None = None) -> StackOptions:
    """Read the command line into :class:`StackOptions`."""
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port of the gallery on 127.0.0.1 (default 8000; 0 picks a free port)",
    )
    parser.add_argument(
        "--no-ingest",
        dest="ingest",
        action="store_false",
        help="do not run ingest before serving",
    )
    parser.add_argument(
        "--real-instagram",
        action="store_true",
        help="call the real Graph API (GRAPH_API_URL, default graph.instagram.com) with the "
        "token in IG_ACCESS_TOKEN instead of the stand-in; images are then downloaded "
        "from MEDIA_HOSTS (default Instagram's CDN)",
    )
    parser.add_argument(
        "--real-aws",
        action="store_true",
        help="use real AWS with the standard credentials (AWS_PROFILE, ...) and the existing "
        "MEDIA_TABLE and MEDIA_BUCKET instead of moto; nothing is created or seeded, and "
        "without --real-instagram ingest is skipped so sample posts never reach a real table",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".demo"),
        help="where generated sample images are cached (default .demo)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the handlers' JSON logs, metrics and every request",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return StackOptions(
        port=args.port,
        ingest=args.ingest,
        real_instagram=args.real_instagram,
        real_aws=args.real_aws,
        cache_dir=args.cache_dir,
        verbose=args.verbose,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C: unwind, and close in ``finally``.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the local stack until interrupted; return the exit status."""
    options = parse_args(argv)
    # Installed for SIGINT too: a shell starts background jobs with SIGINT
    # ignored, and ``kill -INT`` must still stop the demo.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    stack = LocalStack(options, out=lambda line: print(line, flush=True))
    try:
        print("Starting the local gallery stack...", flush=True)
        stack.start()
        ready = time.perf_counter() - _STARTED
        print(f"\nServing after {ready:.1f} s: {stack.url}/  (index of events)", flush=True)
        for event_id in stack.sample_events:
            print(f"  {stack.url}/g/{event_id}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            # Short sleeps: Python runs signal handlers in the main thread only
            # when it executes, and the kernel may deliver Ctrl-C to a server
            # thread, which would leave a long sleep uninterrupted.
            time.sleep(0.2)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    finally:
        stack.close()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
