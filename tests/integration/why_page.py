"""Reading the admin why inspector (`/admin/why`) as a program would: its tables by heading."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    """The rows (cell texts) of each table, under the text of the last <h2> before it."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._heading: str | None = None
        self._in_h2 = False
        self._h2 = ""
        self._row: list[str] | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._in_h2, self._h2 = True, ""
        elif tag == "table" and self._heading is not None:
            self.tables.setdefault(self._heading, [])
        elif tag == "tr":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2, self._heading = False, self._h2.strip()
        elif tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row and self._heading is not None:  # header rows have no <td>
                self.tables.setdefault(self._heading, []).append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self._h2 += data
        if self._cell is not None:
            self._cell += data


def tables(page: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    parser.close()
    return parser.tables


def left_out(page: str) -> dict[str, str]:
    """Widget id → the reason code shown for it in the "Left out" table."""
    rows = tables(page)["Left out"]
    found = {row[0]: row[1] for row in rows}
    assert len(found) == len(rows), "a widget is left out twice"
    return found


def shown(page: str) -> dict[str, list[str]]:
    """Widget id → its row in the "Shown" table (slot, id, type, why, source, confidence...)."""
    return {row[1]: row for row in tables(page)["Shown"]}
