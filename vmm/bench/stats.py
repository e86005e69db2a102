"""Helpers the benchmarks share: min/median/max summaries, ratios, plain-text tables and bars.

Pure functions on numbers and strings; no benchmark logic, no I/O.
"""
import statistics


def summary(values) -> dict:
    """{"min", "median", "max"} of a non-empty sequence of numbers."""
    values = list(values)
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def ratio(value, baseline):
    """value / baseline, or None when either is missing or the baseline is zero."""
    if value is None or not baseline:
        return None
    return value / baseline


def table(headers, rows, align=None) -> str:
    """A plain-text table: `headers` and each row are sequences of strings (None prints as "").

    `align` is a string with one "<" or ">" per column (default: first column left, the rest right).
    """
    align = align or "<" + ">" * (len(headers) - 1)
    cells = [[("" if cell is None else str(cell)) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def bars(items, width: int = 50, unit: str = "", fmt: str = "{:.1f}") -> str:
    """A horizontal bar chart: `items` is [(label, value or None, note)], value None prints the note.

    Bars share one linear scale, the largest value filling `width` characters.
    """
    items = list(items)
    largest = max((value for _, value, _ in items if value is not None), default=0)
    label_width = max((len(label) for label, _, _ in items), default=0)
    lines = []
    for label, value, note in items:
        if value is None:
            lines.append(f"{label:<{label_width}}  ({note})")
            continue
        length = round(width * value / largest) if largest else 0
        bar = "#" * max(length, 1 if value > 0 else 0)
        lines.append(f"{label:<{label_width}}  {bar} {fmt.format(value)}{unit}")
    return "\n".join(lines)


def report(result: dict, text: str, json_path=None, failed: bool = False) -> int:
    """Print a benchmark's table, write its result as JSON if asked, and give the exit
    status: 1 if a row failed (an unavailable row is not a failure)."""
    print(text)
    if json_path:
        import json
        with open(json_path, "w") as file:
            json.dump(result, file, indent=2)
            file.write("\n")
    return 1 if failed else 0
