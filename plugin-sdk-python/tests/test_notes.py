"""The notes example (examples/notes) against TestBroker, as the Rust notes example's
tests: notes stored as bound parameters, listed newest first, messages counted only
with the grant; its manifest asks for what it uses, with justifications.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from plexichat_plugin import PluginError
from plexichat_plugin.testing import TestBroker

NOTES = Path(__file__).resolve().parent.parent / "examples" / "notes"
RECENT = "SELECT text FROM notes ORDER BY id DESC LIMIT ?1"
COUNT = "SELECT count(*) AS n FROM messages"


def load_notes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notes_example", NOTES / "main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def approved() -> TestBroker:
    """The grants its manifest asks for."""
    return (
        TestBroker("notes-py")
        .grant("database_write", ["notes"])
        .grant("database_read", ["messages"])
    )


def test_the_manifest_declares_its_commands_and_justified_permissions() -> None:
    manifest = tomllib.loads((NOTES / "plugin.toml").read_text())
    assert (manifest["runtime"], manifest["entry"]) == ("python3", "main.py")
    assert [c["name"] for c in manifest["commands"]] == ["note", "recent", "count"]
    perms = {p["name"]: p for p in manifest["permissions"]}
    assert perms["database_write"]["scope"] == ["notes"]
    assert perms["database_read"]["scope"] == ["messages"]
    assert all(p["justification"] for p in perms.values())
    registered = set(load_notes().plugin._commands)
    assert registered == {"note", "recent", "count"}


def test_notes_are_stored_as_bound_parameters() -> None:
    sneaky = "x'); DROP TABLE notes; --"
    with approved().start(load_notes().plugin) as notes:
        assert notes.invoke("note", sneaky) == b"stored 1"
        assert notes.db_writes == ["INSERT INTO notes (text) VALUES (?1)"]
        assert notes.db_write_params == [[sneaky]]


def test_recent_notes_are_listed_newest_first_skipping_nulls() -> None:
    broker = approved().rows(RECENT, [{"text": "newest"}, {"text": None}, {"text": "older"}])
    with broker.start(load_notes().plugin) as notes:
        # Read on `notes` comes with database_write on it, as in the broker.
        assert notes.invoke("recent") == b"newest\nolder"


def test_messages_are_counted_only_with_the_grant() -> None:
    with approved().rows(COUNT, [{"n": 42}]).start(load_notes().plugin) as counted:
        assert counted.invoke("count") == b"42"
    only_write = TestBroker("notes-py").grant("database_write", ["notes"])
    with only_write.start(load_notes().plugin) as denied:
        out = denied.invoke("count").decode()
        assert out == "not allowed: database_read is not granted for table `messages`", out


def test_without_database_write_nothing_is_written() -> None:
    read_only = TestBroker("notes-py").grant("database_read", ["notes"])
    with read_only.start(load_notes().plugin) as notes:
        with pytest.raises(PluginError, match="database_write is not granted for table `notes`"):
            notes.invoke("note", "hi")
        assert notes.db_writes == []
        # An unscripted SELECT on a readable table simply has no rows.
        assert notes.invoke("recent") == b""


def test_arguments_must_be_utf8() -> None:
    with approved().start(load_notes().plugin) as notes:
        with pytest.raises(PluginError, match="arguments must be UTF-8"):
            notes.invoke("note", b"\xff\xfe")
