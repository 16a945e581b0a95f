"""Who gains from federation, from `make who-gains`'s two sweeps (written into the first):
`python src/who_gains.py <federated sweep dir> <alone sweep dir>`."""

import argparse
import sys
from pathlib import Path

from fdagmm.who_gains import write_who_gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("federated_dir", type=Path, help="the sweep of method=fdagmm (every client's per_client metrics)")
    parser.add_argument("alone_dir", type=Path, help="the sweep of method=local method.home_client=0..K-1")
    args = parser.parse_args()
    try:
        path = write_who_gains(args.federated_dir, args.alone_dir)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
