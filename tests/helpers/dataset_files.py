"""Small files cut from the real NSL-KDD and UNSW-NB15 files (never kept in the repository:
written to a test's tmp dir), and a CICFlowMeter-style flow file derived from UNSW-NB15 for
the ``data=csv`` path: renamed columns, identifier columns added, a text label."""

from __future__ import annotations

import gzip
from pathlib import Path

# UNSW-NB15 column -> a CICFlowMeter-style name; the others are title-cased ("ct_srv_src" ->
# "Ct Srv Src").
CIC_NAMES = {
    "id": "Id",
    "dur": "Flow Duration",
    "proto": "Protocol",
    "service": "Service",
    "state": "State",
    "spkts": "Tot Fwd Pkts",
    "dpkts": "Tot Bwd Pkts",
    "sbytes": "TotLen Fwd Pkts",
    "dbytes": "TotLen Bwd Pkts",
    "rate": "Flow Pkts/s",
    "smean": "Fwd Pkt Len Mean",
    "dmean": "Bwd Pkt Len Mean",
}
# Added in front of each record, as CICFlowMeter writes them; an inferred schema drops them.
IDENTIFIERS = ["Flow ID", "Src IP", "Timestamp"]


def cic_name(column: str) -> str:
    return CIC_NAMES.get(column, column.replace("_", " ").title())


def read_lines(path: Path) -> list[str]:
    """A gzip or plain text file's lines (a byte-order mark dropped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        return f.readlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path


def every_nth(lines: list[str], n: int, header: bool = False, offset: int = 0) -> list[str]:
    """The header (if ``header``) and every n-th record, from record ``offset`` on."""
    head, records = (lines[:1], lines[1:]) if header else ([], lines)
    return head + records[offset::n]


def cic_flow_lines(unsw_lines: list[str], labelled: bool = True) -> list[str]:
    """UNSW-NB15 records (header first) as a CICFlowMeter-style export: ``Flow ID``, ``Src IP``
    and ``Timestamp`` first, the columns renamed, ``attack_cat`` folded into a text ``Label``
    (``BENIGN`` or the attack family; left out when not ``labelled``)."""
    columns = unsw_lines[0].strip().split(",")
    label, category = columns.index("label"), columns.index("attack_cat")
    kept = [j for j in range(len(columns)) if j not in (label, category)]
    header = [*IDENTIFIERS, *(cic_name(columns[j]) for j in kept), *(["Label"] if labelled else [])]
    out = [",".join(header) + "\n"]
    for k, line in enumerate(unsw_lines[1:]):
        fields = line.rstrip("\n").split(",")
        src = f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}"
        identifiers = [f"{src}-192.168.1.{k % 200 + 1}-{1024 + k % 60000}-80-6", src, f"22/01/2015 {k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}"]
        verdict = "BENIGN" if fields[label] == "0" else fields[category]
        out.append(",".join([*identifiers, *(fields[j] for j in kept), *([verdict] if labelled else [])]) + "\n")
    return out
