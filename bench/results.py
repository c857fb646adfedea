"""Benchmark rows: each a figure, the baseline measured in the same run, and the target ratio."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass(slots=True)
class Row:
    name: str
    value: float | None
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["pass"] = data.pop("passed")
        return data


def ratio_row(
    name: str,
    value: float | None,
    unit: str,
    baseline_name: str,
    baseline: float | None,
    minimum: float,
) -> Row:
    """A row that passes when value / baseline >= minimum."""
    if value is None or not baseline:
        return Row(name, value, unit, baseline_name, baseline, None, f">= {minimum} x", False)
    ratio = value / baseline
    return Row(
        name,
        value,
        unit,
        baseline_name,
        baseline,
        round(ratio, 3),
        f">= {minimum} x",
        ratio >= minimum,
    )


def limit_row(
    name: str,
    value: float | None,
    unit: str,
    maximum: float,
    baseline_name: str | None = None,
    baseline: float | None = None,
) -> Row:
    """A row that passes when value <= maximum (absolute: latency, memory, losses)."""
    ok = value is not None and value <= maximum
    return Row(name, value, unit, baseline_name, baseline, None, f"<= {maximum:g} {unit}", ok)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render(rows: list[Row]) -> str:
    head = "| row | value | unit | baseline | baseline value | ratio | target | pass |\n"
    head += "| --- | ---: | --- | --- | ---: | ---: | --- | --- |\n"
    lines = [
        f"| {r.name} | {fmt(r.value)} | {r.unit} | {r.baseline_name or '-'} | "
        f"{fmt(r.baseline_value)} | {fmt(r.ratio)} | {r.target} | "
        f"{'-' if r.passed is None else 'PASS' if r.passed else 'FAIL'} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def render_run(run: dict[str, object]) -> str:
    """One line saying what the figures were measured on."""
    dirty = " (with uncommitted changes)" if run.get("git_dirty") else ""
    return (
        f"Run {run.get('date')} on {run.get('machine')} ({run.get('cpu')}, {run.get('cores')}"
        f" cores), commit {str(run.get('git_commit'))[:12]}{dirty}, Python {run.get('python')},"
        f" PostgreSQL {run.get('postgresql')}, Redis {run.get('redis')},"
        f" quick={run.get('quick')}, only={run.get('only')}.\n\n"
    )


def write(rows: list[Row], notes: list[str], run: dict[str, object]) -> str:
    """Write latest.md (run line, table, notes) and latest.json ({run, rows}); the text."""
    RESULTS.mkdir(exist_ok=True)
    table = render_run(run) + render(rows)
    text = table + ("\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "")
    (RESULTS / "latest.md").write_text(text)
    data = {"run": run, "rows": [r.as_json() for r in rows], "notes": notes}
    (RESULTS / "latest.json").write_text(json.dumps(data, indent=2))
    return text
