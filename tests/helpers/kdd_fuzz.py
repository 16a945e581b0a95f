"""Hypothesis strategies for KDDCUP99-shaped files: well-formed records as the schema
(``schemas/kdd99.yaml``) defines them, with the defects real files have put into some
lines, and where they are.

A ``KDDFile`` is the file's bytes and the 1-based numbers of the lines that were damaged: a
reader may refuse or skip those lines, and only those. Some damage leaves a line valid (a
number padded with spaces, an unknown category at scoring time); a reader need not complain.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass

import hypothesis.strategies as st

from helpers.kdd import KDD99

# Finite numbers from ordinary counts and rates to the ends of float64, negative ones included.
FINITE_NUMBERS = st.one_of(
    st.integers(0, 1000),
    st.floats(0, 1).map(lambda x: round(x, 2)),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0]),
)
# Text without the characters that end a field or a line: a field's content, not its frame.
FIELD_TEXT = st.text(st.characters(blacklist_characters=",\r\n", blacklist_categories=("Cs",)), max_size=8)
LINE_ENDINGS = ("\n", "\r\n", "\r")


@dataclass
class KDDFile:
    data: bytes
    n_lines: int
    damaged: set[int]  # line numbers that may be refused or skipped


def number_text(x: int | float) -> str:
    return str(x) if isinstance(x, int) else repr(x)


NUMERIC_COLUMNS = [j for j, name in enumerate(KDD99.features) if name not in KDD99.categories]


@st.composite
def records(draw, labelled: bool = True) -> list[str]:
    """The fields of one well-formed record (the label with its trailing dot): its categories
    drawn, a few of its numbers drawn and the others 0 (fewer draws: faster, and shorter
    counterexamples)."""
    fields = [draw(st.sampled_from(KDD99.categories[name])) if name in KDD99.categories else "0" for name in KDD99.features]
    for j, x in draw(st.lists(st.tuples(st.sampled_from(NUMERIC_COLUMNS), FINITE_NUMBERS), max_size=4)):
        fields[j] = number_text(x)
    if labelled:
        fields.append(draw(st.sampled_from(sorted(KDD99.known_labels))) + ".")
    return fields


@st.composite
def damaged_lines(draw, fields: list[str]) -> bytes:
    """One line made from a record's ``fields`` with one defect, as bytes without its ending."""
    fields = list(fields)
    i = draw(st.integers(0, len(fields) - 1))
    defect = draw(st.sampled_from([
        "drop a field", "add a field", "empty field", "not a number", "non-finite number", "unknown value",
        "padded field", "quote", "NUL", "not UTF-8", "blank line",
    ]))  # fmt: skip
    if defect == "drop a field":
        del fields[i]
    elif defect == "add a field":
        fields.insert(i, fields[i])
    elif defect == "empty field":
        fields[i] = ""
    elif defect == "not a number":
        fields[i] = draw(st.sampled_from(["abc", "0x1F", "1,5", "١٢", "--1", "1e", "NA", "None", "True"]))
    elif defect == "non-finite number":
        fields[i] = draw(st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e999", "9" * 400]))
    elif defect == "unknown value":
        fields[i] = draw(FIELD_TEXT)
    elif defect == "padded field":
        fields[i] = draw(st.sampled_from([" ", "\t", "  "])) + fields[i] + draw(st.sampled_from(["", " ", "\t"]))
    elif defect == "quote":
        fields[i] = '"' + fields[i]
    elif defect == "NUL":
        fields[i] += "\x00"
    elif defect == "blank line":
        return draw(st.sampled_from([b"", b" ", b"\t"]))
    line = ",".join(fields).encode()
    if defect == "not UTF-8":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80"])) + line[at:]
    return line


@st.composite
def kdd_files(draw, labelled: bool | None = None, max_lines: int = 12) -> KDDFile:
    """A KDDCUP99-format file (gzip or plain), some of its lines damaged."""
    labelled = draw(st.booleans()) if labelled is None else labelled
    n = draw(st.integers(1, max_lines))
    # A minority of the lines: the majority says whether the file has labels (a lone line can
    # be damaged: it is then refused or scored alone).
    damaged = draw(st.sets(st.integers(1, n), max_size=(n - 1) // 2 if n > 1 else 1))
    lines = [
        draw(damaged_lines(draw(records(labelled)))) if k in damaged else ",".join(draw(records(labelled))).encode()
        for k in range(1, n + 1)
    ]
    ending = draw(st.sampled_from(LINE_ENDINGS)).encode()
    ends_with_ending = draw(st.booleans())
    data = ending.join(lines) + (ending if ends_with_ending else b"")
    if draw(st.booleans()):
        data = gzip.compress(data)
    # A blank last line without an ending is no line at all.
    return KDDFile(data, n - (lines[-1] == b"" and not ends_with_ending), damaged)


def assert_one_line_naming_a_line(error: Exception, lines: set[int]) -> None:
    """``error`` is one line that names one of ``lines``."""
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    named = re.search(r"\bline (\d+)\b", message)
    assert named, f"names no line: {message}"
    assert int(named.group(1)) in lines, f"blames line {named.group(1)}, not one of the damaged {sorted(lines)}: {message}"
