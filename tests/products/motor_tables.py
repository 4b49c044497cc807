"""Motor rate table files for the tests: the default own-damage grid with one rate of
zone A, up to 60 months, 1001-1500cc (the reference risk's cell) changed."""

from __future__ import annotations

DEFAULT_GRID = {
    ("A", "60"): ("3.127", "3.283", "3.440"),
    ("A", "120"): ("3.283", "3.447", "3.612"),
    ("A", ""): ("3.362", "3.529", "3.698"),
    ("B", "60"): ("3.039", "3.191", "3.343"),
    ("B", "120"): ("3.191", "3.351", "3.510"),
    ("B", ""): ("3.267", "3.430", "3.594"),
}
HEADER = "zone,max_age_months,up_to_1000cc,1001_to_1500cc,over_1500cc"


def motor_csv(reference_rate: str = "3.283", *, bad_cell: str | None = None) -> bytes:
    """The grid as CSV with the reference cell at `reference_rate`; `bad_cell` replaces
    the B/60 row's 1001-1500cc rate (line 5 of the file) to make it invalid."""
    rows = [HEADER]
    for (zone, age), rates in DEFAULT_GRID.items():
        cells = list(rates)
        if (zone, age) == ("A", "60"):
            cells[1] = reference_rate
        if (zone, age) == ("B", "60") and bad_cell is not None:
            cells[1] = bad_cell
        rows.append(",".join([zone, age, *cells]))
    return ("\n".join(rows) + "\n").encode()
