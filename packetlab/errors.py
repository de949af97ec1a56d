"""Errors that teach: every failure says what happened, why, and what to do next.

A bare traceback tells a learner nothing; a `PacketlabError` carries a *cause*
and a *fix*, and renders as three short lines in a notebook instead of a stack.
"""

from __future__ import annotations


class PacketlabError(Exception):
    """Base error: `what` happened, because of `cause`; do `fix`."""

    def __init__(
        self, what: str, *, cause: str | None = None, fix: str | None = None, detail: str | None = None
    ) -> None:
        self.what, self.cause, self.fix, self.detail = what, cause, fix, detail
        super().__init__(self.__str__())

    def __str__(self) -> str:
        lines = [self.what]
        if self.cause:
            lines.append(f"  cause: {self.cause}")
        if self.fix:
            lines.append(f"  fix:   {self.fix}")
        if self.detail:
            lines.append("")
            lines.append(self.detail)
        return "\n".join(lines)

    def _render_traceback_(self) -> list[str]:
        """IPython hook: show the message, not the stack."""
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class NameTooLong(PacketlabError):
    """An interface name would exceed the kernel's 15-character limit."""


class LabBusy(PacketlabError):
    """Another live process owns a lab with the same name."""


class CommandFailed(PacketlabError):
    """A command run inside a lab host exited non-zero."""


class BpfCompileError(PacketlabError):
    """clang (through bcc) could not compile a bpf/ program."""


class VerifierError(PacketlabError):
    """The kernel verifier rejected a program; `log` holds its own words."""

    def __init__(
        self, what: str, *, log: str, source_line: str | None = None, line_number: int | None = None, **kw
    ) -> None:
        self.log, self.source_line, self.line_number = log, source_line, line_number
        super().__init__(what, **kw)


class MissingRequirement(PacketlabError):
    """A capability, kernel feature, header or tool the step needs is absent."""
