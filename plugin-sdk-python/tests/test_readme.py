"""The README's Python section, followed from an empty directory: its plugin.toml and
main.py as written, tested with its TestBroker snippet, and booted as the supervisor
boots a plugin."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent
README = (SDK / "README.md").read_text()
BLOCKS: list[tuple[str, str]] = re.findall(r"```(\w*)\n(.*?)```", README, re.S)


def block(language: str, index: int = 0) -> str:
    return [text for lang, text in BLOCKS if lang == language][index]


def test_the_readme_plugin_is_tested_as_the_readme_says(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text(block("toml"))
    (tmp_path / "main.py").write_text(block("python", 0))
    test = "def test_readme() -> None:\n" + "".join(
        f"    {line}\n" for line in block("python", 1).splitlines()
    )
    (tmp_path / "test_main.py").write_text(test)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_main.py"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(SDK / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    manifest = tomllib.loads(block("toml"))
    assert (manifest["runtime"], manifest["entry"]) == ("python3", "main.py")
    assert [c["name"] for c in manifest["commands"]] == ["note"]


def test_the_readme_states_the_contract_the_boot_script_keeps() -> None:
    assert "<interpreter> -I -S -B /sdk/plexichat_boot.py /plugin/<entry>" in README
    assert "observation, not a boundary" in README
