"""The footer: Textual's, leaving out the keys that do not fit whole."""

from __future__ import annotations

from textual import events
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeyFooter(Footer):
    """Textual's `Footer`, that never ends in a cut label.

    Textual lays its keys out in a row and lets the last ones run under the command palette's
    key on the right: at 80 columns the row ended in a bare `s` (Stop's label cut away). Keys
    that do not fit whole are left out, from the first one that does not fit on (`?` lists
    them all).
    """

    async def recompose(self) -> None:
        await super().recompose()
        self.call_after_refresh(self._fit)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        keys = [k for k in self.children if isinstance(k, FooterKey)]
        docked = [k for k in keys if k.has_class("-command-palette")]
        viewport = self.app.size

        def width(key: FooterKey) -> int:
            # Measured from its text, not its region: a key left out (or not laid out yet,
            # on a screen under a dialog) has none.
            return key.get_content_width(self.size, viewport) + key.styles.gutter.width

        room = self.size.width - sum(width(k) + k.styles.margin.width for k in docked)
        x, fits = 0, True
        for key in keys:
            if key in docked:
                continue
            x += width(key) + key.styles.margin.width
            fits = fits and x - key.styles.margin.right <= room
            key.display = fits
