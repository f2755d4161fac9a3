"""Run output files: naming, uniqueness, retention, modes."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cron import output, paths
from tests.conftest import write_config

T0 = datetime(2026, 11, 25, 3, 10, 0, 123456, tzinfo=UTC)


def test_write_names_by_utc_stamp(home: Path) -> None:
    eastern = T0.astimezone(timezone(timedelta(hours=-5)))
    assert eastern.hour == 22
    p = output.write_output("abc123abc123", "hello\n", now=eastern)
    assert p == home / "cron" / "output" / "abc123abc123" / "20261125T031000.123456Z.log"
    assert output.read_output(p) == "hello\n"
    assert output.list_outputs("abc123abc123") == [p]


def test_same_microsecond_gets_unique_names_in_order(home: Path) -> None:
    written = [output.write_output("j", f"run {i}", now=T0) for i in range(12)]
    assert len(set(written)) == 12
    assert written[0].name == "20261125T031000.123456Z.log"
    assert written[1].name == "20261125T031000.123456Z-1.log"
    assert written[11].name == "20261125T031000.123456Z-11.log"
    # Oldest to newest even though "-1" sorts before "." and "-10" before "-2" as text.
    assert output.list_outputs("j") == written
    later = output.write_output("j", "later", now=T0 + timedelta(microseconds=1))
    assert output.list_outputs("j")[-1] == later


def test_concurrent_writers_never_collide(home: Path) -> None:
    got: list[Path] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        p = output.write_output("j", f"{i}", now=T0, retention=1000)
        with lock:
            got.append(p)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 16
    assert sorted(output.read_output(p) for p in got) == sorted(str(i) for i in range(16))


def test_retention_keeps_newest(home: Path) -> None:
    written = [
        output.write_output("j", str(i), now=T0 + timedelta(seconds=i), retention=3)
        for i in range(7)
    ]
    assert output.list_outputs("j") == written[-3:]
    assert [output.read_output(p) for p in output.list_outputs("j")] == ["4", "5", "6"]
    other = output.write_output("k", "x", now=T0, retention=3)
    assert output.list_outputs("k") == [other]
    assert len(output.list_outputs("j")) == 3


def test_retention_default_from_config(home: Path) -> None:
    write_config(home, "cron:\n  output_retention: 2\n")
    for i in range(5):
        output.write_output("j", str(i), now=T0 + timedelta(seconds=i))
    assert [output.read_output(p) for p in output.list_outputs("j")] == ["3", "4"]


def test_retention_default_is_50(home: Path) -> None:
    for i in range(53):
        output.write_output("j", str(i), now=T0 + timedelta(seconds=i))
    files = output.list_outputs("j")
    assert len(files) == output.DEFAULT_RETENTION == 50
    assert output.read_output(files[0]) == "3"


def test_file_just_written_survives_even_if_oldest(home: Path) -> None:
    for i in range(3):
        output.write_output("j", str(i), now=T0 + timedelta(hours=1, seconds=i), retention=2)
    skewed = output.write_output("j", "skewed", now=T0, retention=2)
    assert skewed.exists()
    assert len(output.list_outputs("j")) == 2


def test_modes(home: Path) -> None:
    p = output.write_output("j", "secret", now=T0)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    for d in (p.parent, paths.output_dir(), paths.cron_dir(), home):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    # No temp files left behind.
    assert [q.name for q in p.parent.iterdir()] == [p.name]


def test_list_outputs_missing_and_foreign_files(home: Path) -> None:
    assert output.list_outputs("never-ran") == []
    p = output.write_output("j", "x", now=T0)
    (p.parent / "notes.txt").write_text("not an output")
    (p.parent / ".tmp.log").write_text("")
    assert output.list_outputs("j") == [p]


@pytest.mark.parametrize("bad", ["", "..", ".hidden", "a/b", "a\\b"])
def test_bad_job_ids_rejected(home: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        output.write_output(bad, "x", now=T0)


def test_bad_retention_and_naive_time(home: Path) -> None:
    with pytest.raises(ValueError, match="retention"):
        output.write_output("j", "x", now=T0, retention=0)
    with pytest.raises(ValueError, match="naive"):
        output.write_output("j", "x", now=datetime(2026, 1, 1))


def test_unicode_round_trip(home: Path) -> None:
    p = output.write_output("j", "✓ done — ok\n", now=T0)
    assert output.read_output(p) == "✓ done — ok\n"
