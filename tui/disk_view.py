"""The disk view wired to an engine: surveys off the event loop, removals asked about first.

`DiskController` owns one `DiskSurvey` per engine (kept while aitop runs, so a second look
shows the last figures at once while new ones are computed), opens the `DiskScreen`, hands
it each new state and answers its messages: a removal is asked about with a
`ConfirmScreen` naming exactly what goes and what it frees, then run on a worker thread.
"""

from __future__ import annotations

import contextlib
from typing import Any

from textual.app import App

from tui.fleet.disk.survey import DiskSurvey, remove
from tui.fleet.disk.types import Target
from tui.fleet.engine.client import Engine
from tui.fleet.engine.errors import EngineError
from tui.fleet.units import format_bytes
from tui.screens.confirm import ConfirmAnswer, ConfirmScreen
from tui.screens.disk import DiskScreen, DiskState


class DiskController:
    """Opens the disk view of an engine and does what it asks."""

    def __init__(self, app: App[Any], *, read_only: bool) -> None:
        self.app = app
        self.read_only = read_only
        self._surveys: dict[str, DiskSurvey] = {}
        self._screen: DiskScreen | None = None
        self._engine: Engine | None = None

    def open(self, engine: Engine) -> DiskScreen:
        """Push the disk view of `engine` and start a survey."""
        survey = self._surveys.get(engine.url)
        if survey is None:
            survey = self._surveys[engine.url] = DiskSurvey(engine, on_done=self._survey_done)
        self._engine = engine
        survey.refresh()
        screen = DiskScreen(engine.url, self._state(survey), read_only=self.read_only)
        self._screen = screen
        self.app.push_screen(screen, lambda _: self._closed(screen))
        return screen

    def refresh(self) -> None:
        """Survey the open view's engine again (unless a survey runs)."""
        survey = self._survey()
        if survey is not None and survey.refresh():
            self._show()

    def ask_remove(self, message: DiskScreen.RemoveRequested) -> None:
        """Ask before removing, then remove off the event loop."""
        if self.read_only:
            self.app.notify("read-only mode: removal refused", severity="warning", markup=False)
            return

        def answered(answer: ConfirmAnswer | None) -> None:
            if answer is not None and answer.confirmed:
                self.app.run_worker(lambda: self._remove(message.target), thread=True, group="disk")

        plan = message.removal
        self.app.push_screen(
            ConfirmScreen(plan.question, [plan.item], yes=f"Free {format_bytes(plan.freed)}"),
            answered,
        )

    def _remove(self, target: Target) -> None:
        engine = self._engine
        if engine is None:
            return
        try:
            freed = remove(engine, target)
        except EngineError as exc:
            self.app.call_from_thread(
                self.app.notify, f"not removed: {exc}", severity="error", markup=False
            )
            return
        self.app.call_from_thread(
            self.app.notify, f"removed: {format_bytes(freed)} freed", markup=False
        )
        self.app.call_from_thread(self.refresh)

    def _survey(self) -> DiskSurvey | None:
        engine = self._engine
        return self._surveys.get(engine.url) if engine is not None else None

    @staticmethod
    def _state(survey: DiskSurvey) -> DiskState:
        return DiskState(survey.report, survey.running_since, survey.error)

    def _show(self) -> None:
        survey = self._survey()
        if self._screen is not None and survey is not None:
            self._screen.show(self._state(survey))

    def _survey_done(self) -> None:
        # On the survey's thread; the app may be gone (quitting while a survey ran).
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self._show)

    def _closed(self, screen: DiskScreen) -> None:
        if self._screen is screen:
            self._screen = None
