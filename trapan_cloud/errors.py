"""The project's small error hierarchy: the CLI turns any `TrapanError` into one paragraph and a non-zero exit."""

from __future__ import annotations

__all__ = ("TrapanError", "InputError", "ResumeMismatchError", "StoreExistsError", "CorruptStoreError",
           "IncompleteRunError")


class TrapanError(Exception):
    """Base of every error trapan_cloud raises on purpose."""


class InputError(TrapanError, ValueError):
    """An input (array, file, asset, parameter) is not what was expected; the message names it and the fix."""


class ResumeMismatchError(TrapanError):
    """An existing store was made with other settings, or is not a trapan_cloud store: refusing to resume into it."""


class CorruptStoreError(ResumeMismatchError):
    """A trapan_cloud store whose arrays or attributes are missing or misshapen.

    A `ResumeMismatchError` too, so code that catches that class keeps catching it."""


class StoreExistsError(TrapanError):
    """The output exists and neither overwrite nor resume was asked for."""


class IncompleteRunError(TrapanError):
    """A run store with tiles not done was asked for its result; resume the run to finish it."""
