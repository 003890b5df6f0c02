"""docs/compliance.md stays true: every statement once per version, every cited test real.

Pure Python, no broker and no build. The table format is described at the top of
docs/compliance.md: one row per statement, the last column either `file::test` references or a
note starting with "not applicable:", "gap:" or "pending:".
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "compliance.md"

STATEMENT = re.compile(r"^MQTT-\d+\.\d+\.\d+-\d+$")
REFERENCE = re.compile(r"`([^`\s]+\.(?:rs|py|c))::([^`]+)`")
NOTES = ("not applicable:", "gap:", "pending:")
VERSIONS = ("MQTT 5.0", "MQTT 3.1.1")


def sections(text):
    """{heading: [lines]} for every level-2 heading."""
    found, current = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def rows(lines):
    """(id, test cell) of each table row, and the ids of the server-only list."""
    table, server = [], []
    for line in lines:
        if line.startswith("| MQTT-"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            table.append((cells[0], cells[-1], len(cells)))
        elif line.startswith("- MQTT-"):
            server.append(line[2:].split(":", 1)[0].strip())
    return table, server


def reference_problem(path, name):
    """Why `path::name` does not name a real test, or None."""
    file = ROOT / path
    if not file.is_file():
        return f"{path} does not exist"
    source = file.read_text(encoding="utf-8", errors="replace")
    if path.endswith(".rs"):
        found = re.search(r"\bfn\s+" + re.escape(name) + r"\s*\(", source)
    elif path.endswith(".py"):
        found = re.search(r"^\s*(?:async\s+)?def\s+" + re.escape(name) + r"\s*\(", source, re.M)
    else:
        found = name in source
    return None if found else f"{path} has no {name!r}"


def problems(text):
    """Everything wrong with a compliance table, as sentences; empty when it is sound."""
    found = []
    by_heading = sections(text)
    for version in VERSIONS:
        matching = [h for h in by_heading if h.startswith(version + " ")]
        if len(matching) != 1:
            found.append(f"expected one section for {version}, found {matching}")
            continue
        heading = matching[0]
        table, server = rows(by_heading[heading])
        if not table:
            found.append(f"{heading}: no client rows")
        seen = set()
        for statement in [r[0] for r in table] + server:
            if not STATEMENT.match(statement):
                found.append(f"{heading}: {statement!r} is not a statement id")
            if statement in seen:
                found.append(f"{heading}: {statement} appears twice")
            seen.add(statement)
        for statement, test, width in table:
            if width != 4:
                found.append(f"{heading}: {statement} has {width} columns, not 4")
            references = REFERENCE.findall(test)
            for path, name in references:
                problem = reference_problem(path, name)
                if problem:
                    found.append(f"{heading}: {statement}: {problem}")
            note = next((n for n in NOTES if test.startswith(n)), None)
            if note is not None:
                if not test[len(note):].strip():
                    found.append(f"{heading}: {statement}: '{note}' without a reason")
            elif not references:
                found.append(f"{heading}: {statement} has no test and no note: {test!r}")
    return found


def test_the_compliance_table_is_sound():
    assert problems(TABLE.read_text(encoding="utf-8")) == []


def test_both_versions_list_every_statement_once():
    by_heading = sections(TABLE.read_text(encoding="utf-8"))
    counts = {}
    for heading, lines in by_heading.items():
        table, server = rows(lines)
        counts[heading.split(" (")[0]] = len(table) + len(server)
    # The numbered statements of each specification.
    assert counts["MQTT 5.0"] == 251
    assert counts["MQTT 3.1.1"] == 137


SAMPLE = """\
## MQTT 5.0 (test)

| id | requirement | how | test |
|----|-------------|-----|------|
| MQTT-1.5.4-1 | r | h | `tests/test_compliance_table.py::test_the_compliance_table_is_sound` |
{extra}

- MQTT-3.1.0-2: binds the Server (x)

## MQTT 3.1.1 (test)

| MQTT-1.5.3-1 | r | h | not applicable: a reason |
"""


def sample_problems(extra):
    return problems(SAMPLE.format(extra=extra))


def test_the_checker_accepts_a_sound_sample():
    assert sample_problems("") == []


def test_the_checker_finds_a_statement_listed_twice():
    found = sample_problems("| MQTT-3.1.0-2 | r | h | gap: missing |")
    assert any("MQTT-3.1.0-2 appears twice" in p for p in found), found


def test_the_checker_finds_a_missing_file_or_test():
    found = sample_problems(
        "| MQTT-1.5.4-2 | r | h | `tests/no_such_file.py::test_x` |\n"
        "| MQTT-1.5.4-3 | r | h | `src/mqtt/session_tests.rs::no_such_test` |\n"
        "| MQTT-1.5.5-1 | r | h | `tests/c/test_bad_input.c::no such label` |"
    )
    assert any("no_such_file.py does not exist" in p for p in found), found
    assert any("no 'no_such_test'" in p for p in found), found
    assert any("no 'no such label'" in p for p in found), found


def test_the_checker_finds_a_row_without_test_or_note():
    found = sample_problems(
        "| MQTT-1.5.4-2 | r | h | we think it works |\n| MQTT-1.5.4-3 | r | h | gap: |"
    )
    assert any("MQTT-1.5.4-2 has no test and no note" in p for p in found), found
    assert any("MQTT-1.5.4-3: 'gap:' without a reason" in p for p in found), found


PROSE = re.compile(r"^(\d+) statements: (\d+) bind the client \(or are checked by it\), (\d+) bind "
                   r"only the Server\. Of the client rows: (\d+) shown by a test, (\d+) not "
                   r"applicable, (\d+) gaps, (\d+) pending\.$", re.M)


def test_the_counts_in_each_sections_prose_match_its_rows():
    by_heading = sections(TABLE.read_text(encoding="utf-8"))
    for version in VERSIONS:
        heading = next(h for h in by_heading if h.startswith(version + " "))
        lines = by_heading[heading]
        table, server = rows(lines)
        said = PROSE.search("\n".join(lines))
        assert said, f"{heading}: no counting sentence"
        noted = {n: sum(1 for _, test, _ in table if test.startswith(n)) for n in NOTES}
        counted = (len(table) + len(server), len(table), len(server),
                   len(table) - sum(noted.values()), noted["not applicable:"], noted["gap:"],
                   noted["pending:"])
        assert tuple(int(n) for n in said.groups()) == counted, heading
