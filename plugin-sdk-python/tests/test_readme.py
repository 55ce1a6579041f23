"""The repository README's Python section, followed from an empty directory: its
plugin.toml and main.py as written, tested with its test_main.py (the supervisor side
of the same steps is tests/tests/python_adoption.rs)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent
README = (SDK.parent / "README.md").read_text()
SECTION = README[README.index("## Writing a Python plugin") :]
SECTION = SECTION[: SECTION.index("\n## ", 3)]
BLOCKS: list[tuple[str, str]] = re.findall(r"```(\w*)\n(.*?)```", SECTION, re.S)


def block(language: str, index: int = 0) -> str:
    text = [text for lang, text in BLOCKS if lang == language][index]
    # The blocks sit in a numbered list: three spaces of indentation.
    return "\n".join(line[3:] if line.startswith("   ") else line for line in text.splitlines())


def test_the_readme_plugin_is_tested_as_the_readme_says(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text(block("toml"))
    (tmp_path / "main.py").write_text(block("python", 0))
    (tmp_path / "test_main.py").write_text(block("python", 1))
    out = subprocess.run(
        [sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_main.py"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(SDK / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    manifest = tomllib.loads(block("toml"))
    assert (manifest["runtime"], manifest["entry"]) == ("python3", "main.py")
    assert [c["name"] for c in manifest["commands"]] == ["greet", "count"]


def test_the_readme_states_the_contract_the_boot_script_keeps() -> None:
    assert "<interpreter> -I -S -B /sdk/plexichat_boot.py /plugin/<entry>" in SECTION
    assert "observation, not a boundary" in SECTION
