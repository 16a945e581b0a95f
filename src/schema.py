"""Data-set schemas: `python src/schema.py infer flows.csv > flows.yaml` drafts one from a file.

The draft (column kinds from the header and the first rows; identifiers dropped; fixed
scalings; hashed categories) is for review and pinning: train with
`data=csv data.train_path=flows.csv data.schema=flows.yaml` (docs/data.md).
"""

import argparse
import sys
from pathlib import Path

from fdagmm.cli import one_line_errors
from fdagmm.data.inference import infer_schema


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python src/schema.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    infer = commands.add_parser("infer", help="print a headered CSV file's inferred schema as YAML")
    infer.add_argument("file", type=Path, help="a CSV file with a header, gzip or plain")
    infer.add_argument("--label", default=None, help="the label column (default: none, unlabelled records)")
    infer.add_argument("--benign", nargs="+", default=[], metavar="VALUE", help="the label values of benign traffic")
    infer.add_argument("--drop", nargs="+", default=[], metavar="COLUMN", help="columns to drop besides the identifiers found")
    infer.add_argument("--name", default=None, help="the data set's name (default: the file's name)")
    args = parser.parse_args(argv)
    with one_line_errors(debug=False):
        name = args.name or args.file.name.split(".")[0]
        schema = infer_schema(args.file, name=name, label_column=args.label, benign_labels=args.benign, drop_columns=args.drop)
        print(f"# Inferred from {args.file} by `python src/schema.py infer`: review the kinds and scalings, then pin it.")
        print(schema.to_yaml(), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
