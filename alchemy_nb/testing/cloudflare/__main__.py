"""``python -m alchemy_nb.testing.cloudflare [--port N] [--latency S] ...``: serve the
contract fake and print its base URL, the token it accepts and the account id."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading

from ._fake import FakeCloudflare


def main(argv: list[str] | None = None) -> int:
    """Run the fake until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m alchemy_nb.testing.cloudflare",
        description="A contract fake of the Cloudflare REST API on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per call")
    parser.add_argument("--rate-limit-ratio", type=float, default=0.0, help="share of 429s")
    parser.add_argument("--error-ratio", type=float, default=0.0, help="share of 503s")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After on 429s")
    parser.add_argument("--token", default="fake-cloudflare-token", help="the accepted token")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    fake = FakeCloudflare(
        port=args.port,
        latency=args.latency,
        rate_limit_ratio=args.rate_limit_ratio,
        error_ratio=args.error_ratio,
        retry_after=args.retry_after,
        token=args.token,
    ).start()
    if args.json:
        print(
            json.dumps(
                {"base_url": fake.base_url, "token": fake.token, "account_id": fake.account_id}
            ),
            flush=True,
        )
    else:
        print(fake.base_url, flush=True)
        print(f"token: {fake.token}  account: {fake.account_id}", file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
