"""``python -m hub_config.local`` (``make run``): the facility on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from hub_config.local.facility import DEFAULT_USERS, LocalFacility


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub_config.local", description=__doc__)
    parser.add_argument("--state", type=Path, default=Path("state"), help="state directory")
    parser.add_argument("--port", type=int, default=8000, help="hub port (another if busy)")
    parser.add_argument("--idp-port", type=int, default=8001, help="development IAM port")
    parser.add_argument("--users", type=Path, default=DEFAULT_USERS, help="test users YAML")
    parser.add_argument("--sample-data", default="", help="directory of the sample datasets")
    parser.add_argument(
        "--storage",
        action="store_true",
        help="an XRootD storage serving the sample data to the users' tokens (IAM over TLS)",
    )
    args = parser.parse_args(argv)

    facility = LocalFacility(
        state_dir=args.state,
        users_file=args.users,
        hub_port=args.port,
        idp_port=args.idp_port,
        sample_data=str(Path(args.sample_data).resolve()) if args.sample_data else "",
        log_dir=args.state / "logs",
        storage=args.storage,
    )
    # Ctrl-C (or a SIGTERM) stops the facility, even when started from a shell that ignores
    # SIGINT (a background job), which Python would otherwise inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with facility:
        print(f"\nThe facility is running at {facility.url}  (Ctrl-C stops it)")
        print(f"Development IAM (not for production): {facility.issuer}")
        if facility.storage_server:
            storage = facility.storage_server
            print(f"Storage (tokens of the IAM above): {storage.root_url} and {storage.https_url}")
            print(f"  the sample data: {storage.url('/store/cms/sample')} (group cms reads it)")
            print(f"  the IAM's and storage's CA: {facility.ca.ca_file}")
        print(f"Logs: {args.state / 'logs'}\nTest users (username / password, groups):")
        for user in facility.users():
            print(f"  {user['username']:22} {user['password']:10} {', '.join(user['groups'])}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            # A second Ctrl-C would cut the orderly stop short and leave servers behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("\nStopping the facility (the hub stops the users' servers first)...", flush=True)
    print("The facility has stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
