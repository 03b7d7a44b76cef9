"""An account's month at a glance: main and bonus balance over time, blocks and payments marked.

Drawn from the account's history (:mod:`billing_cli.history`): the ledger's BalanceChanged after
every journal transaction gives both balances, the tariff's AccountBlocked / AccountUnblocked
the blocks. Pure functions: lines for a terminal, or an SVG document.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from billing_cli.history import HistoryLine
from billing_cli.output import money

BLOCK_COLOURS = {"debt": "#f4b6b6", "voluntary": "#d9d9d9"}


@dataclass(frozen=True)
class Point:
    at: datetime
    main: int
    bonus: int


@dataclass(frozen=True)
class Payment:
    at: datetime
    amount: int


@dataclass(frozen=True)
class Block:
    reason: str
    start: datetime
    end: datetime | None
    """None: still blocked at the end of the history."""


@dataclass
class Picture:
    currency: str = "RUB"
    points: list[Point] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return min([p.at for p in self.points] + [b.start for b in self.blocks])

    @property
    def end(self) -> datetime:
        return max([p.at for p in self.points] + [b.end or b.start for b in self.blocks])

    def low_high(self) -> tuple[int, int]:
        values = [0] + [p.main for p in self.points] + [p.bonus for p in self.points]
        low, high = min(values), max(values)
        return low, high if high > low else low + 100


def picture(lines: Sequence[HistoryLine]) -> Picture:
    """The balances, payments and blocks of a history (in the order it happened)."""
    drawn = Picture()
    opened: dict[str, datetime] = {}
    for line in lines:
        envelope, payload = line.envelope, line.envelope.payload
        if envelope.event_type == "BalanceChanged":
            drawn.currency = payload.main.currency
            drawn.points.append(Point(envelope.occurred_at, payload.main.minor, payload.bonus.minor))
            if payload.cause_type == "PaymentReceived":
                drawn.payments.append(Payment(envelope.occurred_at, payload.delta_main.minor))
        elif envelope.event_type == "AccountBlocked":
            opened.setdefault(payload.reason.value, envelope.occurred_at)
        elif envelope.event_type == "AccountUnblocked" and payload.reason.value in opened:
            drawn.blocks.append(Block(payload.reason.value, opened.pop(payload.reason.value), envelope.occurred_at))
    drawn.blocks.extend(Block(reason, start, None) for reason, start in opened.items())
    drawn.blocks.sort(key=lambda block: block.start)
    return drawn


def _balance_at(points: Sequence[Point], moment: datetime, attribute: str) -> int | None:
    """The balance in force at ``moment`` (the last change at or before it)."""
    found = None
    for point in points:
        if point.at > moment:
            break
        found = getattr(point, attribute)
    return found


def terminal(drawn: Picture, *, width: int = 72, height: int = 14) -> list[str]:
    """A text chart: ``█`` main balance, ``·`` bonus, a zero line, and under the time axis a row
    of ``P`` (payments) and ``D`` / ``V`` (days blocked for debt / voluntarily)."""
    low, high = drawn.low_high()
    start, span = drawn.start, max((drawn.end - drawn.start).total_seconds(), 1.0)
    moments = [start + (drawn.end - start) * (column / (width - 1)) for column in range(width)]

    def row_of(value: int) -> int:
        return round((high - value) / (high - low) * (height - 1))

    grid = [[" "] * width for _ in range(height)]
    zero = row_of(0)
    for column, moment in enumerate(moments):
        grid[zero][column] = "─"
        bonus = _balance_at(drawn.points, moment, "bonus")
        main = _balance_at(drawn.points, moment, "main")
        if bonus is not None:
            grid[row_of(bonus)][column] = "·"
        if main is not None:  # a bar from the zero line to the balance
            top, bottom = sorted((row_of(main), zero))
            for row in range(top, bottom + 1):
                grid[row][column] = "█"
    marks = [" "] * width
    for block in drawn.blocks:
        first = round((block.start - start).total_seconds() / span * (width - 1))
        last = round(((block.end or drawn.end) - start).total_seconds() / span * (width - 1))
        for column in range(first, last + 1):
            marks[column] = "D" if block.reason == "debt" else "V"
    for payment in drawn.payments:
        marks[round((payment.at - start).total_seconds() / span * (width - 1))] = "P"
    labels = {0: money(high, drawn.currency), zero: money(0, drawn.currency),
              height - 1: money(low, drawn.currency)}
    pad = max(len(label) for label in labels.values())
    out = [f"{labels.get(row, ''):>{pad}} ┤{''.join(cells)}" for row, cells in enumerate(grid)]
    out.append(f"{'':>{pad}}  {''.join(marks)}")
    left, right = f"{start:%Y-%m-%d}", f"{drawn.end:%Y-%m-%d}"
    out.append(f"{'':>{pad}}  {left}{right:>{width - len(left)}}")
    out.append(f"{'':>{pad}}  █ main  · bonus  P payment  D blocked for debt  V voluntary block")
    return out


def svg(drawn: Picture, title: str, *, width: int = 900, height: int = 360) -> str:
    """The same picture as an SVG document: step lines for both balances, shaded blocks, a
    marker (with its amount as a tooltip) for each payment."""
    left, right, top, bottom = 110, 20, 40, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = drawn.low_high()
    start, span = drawn.start, max((drawn.end - drawn.start).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return round(left + (moment - start).total_seconds() / span * plot_w, 1)

    def y(value: int) -> float:
        return round(top + (high - value) / (high - low) * plot_h, 1)

    root = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", width=str(width), height=str(height),
                      viewBox=f"0 0 {width} {height}", attrib={"font-family": "sans-serif", "font-size": "12"})
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "text", x=str(left), y="22", attrib={"font-size": "15"}).text = title
    for block in drawn.blocks:
        rect = ET.SubElement(root, "rect", x=str(x(block.start)), y=str(top), height=str(plot_h),
                             width=str(max(x(block.end or drawn.end) - x(block.start), 2)),
                             fill=BLOCK_COLOURS.get(block.reason, "#eeeeee"), attrib={"class": f"block {block.reason}"})
        until = f" to {block.end:%Y-%m-%d %H:%M}" if block.end else " (still blocked)"
        ET.SubElement(rect, "title").text = f"blocked ({block.reason}) from {block.start:%Y-%m-%d %H:%M}{until}"
    for value in sorted({low, 0, high}):
        ET.SubElement(root, "line", x1=str(left), x2=str(left + plot_w), y1=str(y(value)), y2=str(y(value)),
                      stroke="#999999" if value == 0 else "#e0e0e0")
        ET.SubElement(root, "text", x=str(left - 6), y=str(y(value) + 4),
                      attrib={"text-anchor": "end", "class": "axis"}).text = money(value, drawn.currency)
    for attribute, colour in (("main", "#1f5fbf"), ("bonus", "#2e9e4f")):
        steps: list[str] = []
        level: float | None = None
        for point in drawn.points:  # a balance holds until the next change: steps, not slopes
            if level is not None:
                steps.append(f"{x(point.at)},{level}")
            level = y(getattr(point, attribute))
            steps.append(f"{x(point.at)},{level}")
        if level is not None:
            steps.append(f"{x(drawn.end)},{level}")
        ET.SubElement(root, "polyline", points=" ".join(steps), fill="none", stroke=colour,
                      attrib={"stroke-width": "2", "class": f"balance {attribute}"})
    for payment in drawn.payments:
        marker = ET.SubElement(root, "circle", cx=str(x(payment.at)), cy=str(top + plot_h + 12), r="5",
                               fill="#1f5fbf", attrib={"class": "payment"})
        ET.SubElement(marker, "title").text = (
            f"payment {money(payment.amount, drawn.currency)} at {payment.at:%Y-%m-%d %H:%M}")
    for moment, anchor in ((start, "start"), (drawn.end, "end")):
        ET.SubElement(root, "text", x=str(x(moment)), y=str(height - 30),
                      attrib={"text-anchor": anchor, "class": "axis"}).text = f"{moment:%Y-%m-%d %H:%M} UTC"
    legend = ("main balance (blue), bonus (green), payments (dots), blocked for debt (red) or voluntarily (grey)")
    ET.SubElement(root, "text", x=str(left), y=str(height - 10), attrib={"class": "legend"}).text = legend
    return ET.tostring(root, encoding="unicode")
