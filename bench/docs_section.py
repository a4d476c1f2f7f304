"""Each benchmark's section of docs/BENCHMARKS.md: the text after its marker (``<!-- search -->``) up to the
next ``## `` heading belongs to the script that owns the marker, and ``--write`` replaces it. Every section
opens the same way (:func:`header`): the machine, the command, and the baseline its ratios are against.

Used by the benchmark scripts as ``from docs_section import write_section`` (``bench/`` is on ``sys.path``
when a script of it runs).
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def split_section(doc: str, marker: str, *, docs: Path = DOCS) -> tuple[str, str, str]:
    """``(before, section, after)`` of ``doc``: ``before`` ends with ``marker``, ``section`` runs to the next
    ``## `` heading, ``after`` starts with it (``""`` when the section is the last one)."""
    head, found, rest = doc.partition(marker)
    if not found:
        raise SystemExit(f"{docs} has no {marker} marker")
    end = rest.find("\n## ")
    end = len(rest) if end < 0 else end
    return head + marker, rest[:end], rest[end:]


def write_section(marker: str, text: str, *, heading: str | None = None, docs: Path = DOCS) -> None:
    """Replace the section under ``marker`` with ``text``; a missing marker is added at the end of the file under
    ``## heading`` (without a heading, a missing marker is an error)."""
    doc = docs.read_text(encoding="utf-8")
    if marker not in doc and heading:
        doc = doc.rstrip("\n") + f"\n\n## {heading}\n\n{marker}\n"
    before, _, after = split_section(doc, marker, docs=docs)
    docs.write_text(before + "\n\n" + text + "\n" + after, encoding="utf-8")


def write_block(marker: str, name: str, body: str, *, docs: Path = DOCS) -> None:
    """Replace the block ``<!-- name -->`` .. ``<!-- /name -->`` inside the section under ``marker`` (added at the
    section's end when absent): one section holding several independently measured blocks (CPU, GPU)."""
    before, section, after = split_section(docs.read_text(encoding="utf-8"), marker, docs=docs)
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in section and end in section:
        head, _, tail = section.partition(start)
        section = head + block + tail.partition(end)[2]
    else:
        section = section.rstrip("\n") + "\n\n" + block + "\n"
    docs.write_text(before + section + after, encoding="utf-8")


def header(machine: str, run: str, baseline: str) -> str:
    """The opening every section shares: the machine, the command that wrote it, and the baseline its ratios are
    against (``run`` is markdown: the command in backticks, perhaps followed by a note)."""
    return f"**Machine:** {machine}. **Run:** {run}.\n\n**Baseline:** {baseline}"
