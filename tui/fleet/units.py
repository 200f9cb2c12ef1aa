"""Byte sizes as people read them: the one formatter of the panes, the GPU lines and the inspect
view. Plain functions, no I/O: widgets may import it."""

from __future__ import annotations

NA = "N/A"
"""How an unknown size reads unless the caller says otherwise."""

_SHORT = ("B", "K", "M", "G", "T", "P")
_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(value: float | None, *, na: str = NA, iec: bool = False) -> str:
    """A size in binary units (1024), or `na` for None.

    By default it reads like `docker stats`: 1536 -> "1.5K", 19541180416 -> "18.2G", 80 GiB ->
    "80.0G", and from 100 of a unit on without a decimal ("512M"). With `iec` it reads like a
    configuration (the inspect view): 536870912 -> "512 MiB", 1610612736 -> "1.5 GiB", a whole
    number of a unit without a decimal.
    """
    if value is None:
        return na
    units = _IEC if iec else _SHORT
    size = float(value)
    step = 0
    while abs(size) >= 1024 and step < len(units) - 1:
        size /= 1024
        step += 1
    unit = units[step]
    if iec:
        return f"{size:.0f} {unit}" if size == int(size) else f"{size:.1f} {unit}"
    if step == 0:
        return f"{int(size)}{unit}"
    return f"{size:.1f}{unit}" if abs(size) < 100 else f"{size:.0f}{unit}"
