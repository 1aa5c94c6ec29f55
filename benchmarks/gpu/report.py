"""The markdown summary of a GPU check report (``gpu_check.json`` -> ``gpu_check.md``)."""

from __future__ import annotations

from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if value is None:
        return '-'
    return str(value).replace('|', '\\|').replace('\n', ' ')


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """Lines of a markdown table; floats to 4 significant digits, booleans as yes / NO."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_cell(value) for value in row) + ' |' for row in rows]
    return lines


def _machine_line(env: dict) -> str:
    gpu = env.get('gpu') or {}
    parts = [
        gpu.get('name') or 'no GPU',
        f'driver {gpu["driver"]}' if gpu.get('driver') else None,
        f'torch {env.get("torch")} (CUDA {env.get("torch_cuda")})' if env.get('torch') else None,
        f'torchvision {env.get("torchvision")}' if env.get('torchvision') else None,
        f'Python {env.get("python")}' if env.get('python') else None,
        f'{env.get("cpus")} CPUs' if env.get('cpus') else None,
        f'polarmask {env.get("commit")}' if env.get('commit') else None,
    ]
    return ', '.join(part for part in parts if part)


def render_markdown(report: dict) -> str:
    """The report as markdown: machine, stage statuses, goals, then each stage's tables.

    Args:
        report: ``started``, ``command``, ``device``, ``total_s`` and ``stages`` (name ->
            ``status``, ``seconds``, ``note``, ``results`` with optional ``tables`` and
            ``goals``), as ``check.py`` writes it.

    Returns:
        str: the markdown text.
    """
    stages = report['stages']
    env = stages.get('env', {}).get('results', {})
    lines = [
        '# polarmask GPU check',
        '',
        f'{_machine_line(env)}. Started {report["started"]}, {report.get("total_s", 0):.0f} s '
        f'in all, device `{report["device"]}`.',
        '',
        f'`{report["command"]}`',
        '',
    ]
    lines += markdown_table(
        ['stage', 'status', 'seconds', 'note'],
        [
            [name, entry['status'], entry.get('seconds'), entry.get('note', '')]
            for name, entry in stages.items()
        ],
    )
    goals = [
        [goal['goal'], goal['measured'], goal['met']]
        for entry in stages.values()
        for goal in entry.get('results', {}).get('goals', [])
    ]
    if goals:
        lines += ['', '## Goals (reported, not asserted)', '']
        lines += markdown_table(['goal', 'measured', 'met'], goals)
    for name, entry in stages.items():
        for table in entry.get('results', {}).get('tables', []):
            lines += ['', f'## {name}: {table["title"]}', '']
            lines += markdown_table(table['header'], table['rows'])
    return '\n'.join(lines) + '\n'
