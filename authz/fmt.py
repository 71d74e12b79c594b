"""``policy fmt``: one canonical spelling of the policy files.

Each rule line becomes ``ptype, v1, v2, ...`` (one space after each comma, none before);
comments keep their text with one space after ``#``-runs' leading white space removed;
trailing white space goes, runs of blank lines become one, the file ends with one newline.
Order and comments are kept: formatting never changes what a file means. A line that does
not parse is an error (``policy lint`` says why), and nothing is rewritten.
"""

from __future__ import annotations

from pathlib import Path

from authz.policy import parse_policy_line, policy_files

__all__ = ["format_text", "formatted_files"]


def format_text(text: str, source: str) -> str:
    """The canonical form of one policy file's text (raises PolicyError on a bad line)."""
    out: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        if line.startswith("#"):
            out.append(line)
            continue
        rule = parse_policy_line(line, f"{source}:{lineno}")
        assert rule is not None
        out.append(str(rule))
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def formatted_files(policy_dir: Path) -> list[tuple[Path, str, str]]:
    """``(path, current text, canonical text)`` of every ``*.csv`` file of ``policy_dir``."""
    found = []
    for path in policy_files(policy_dir):
        text = path.read_text(encoding="utf-8")
        found.append((path, text, format_text(text, str(path))))
    return found
