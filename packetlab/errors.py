"""Errors that teach: every failure says what happened, why, and what to do next.

A bare traceback tells a learner nothing; a `PacketlabError` carries a *cause*
and a *fix*, and renders as three short lines in a notebook instead of a stack.

The kind of error also decides how a command ends: `run_cli` is the one place
that turns them into the exit codes every packetlab command shares (`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


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


class LabRecordCorrupt(PacketlabError):
    """A lab's on-disk record cannot be read; `path` is the file."""

    path: object = None


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


class InputError(PacketlabError):
    """The input (a rule file, a config, a request) was refused before anything changed.

    The firewall's `RuleError` and the load balancer's `ConfigError` are kinds of it,
    so a command exits 1 for them and 3 for what the system refused."""


class UsageError(PacketlabError):
    """The command line asks for something it must not do as given (e.g. the host without --allow-host)."""


EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_SYSTEM, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES = """\
exit codes:
  0    success
  1    the input was refused (invalid rule file or config: nothing was changed),
       or a check found a problem
  2    usage error (unknown option, missing argument)
  3    the system refused (kernel, capability or namespace error; the message says what to do)
  130  interrupted (Ctrl-C)"""


def document_exit_codes(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Put `EXIT_CODES` at the end of `parser`'s --help and of each of its subcommands'."""
    parsers = [parser]
    while parsers:
        p = parsers.pop()
        p.epilog, p.formatter_class = EXIT_CODES, argparse.RawDescriptionHelpFormatter
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return parser


def exit_code(exc: BaseException) -> int:
    """The exit code a command ends with when `exc` stops it (see `EXIT_CODES`)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, InputError):
        return EXIT_REFUSED
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return EXIT_SYSTEM  # any other PacketlabError, or an OSError the kernel returned


def run_cli(prog: str, fn: Callable[[], int | None]) -> int:
    """Run one command of the `prog` CLI and return its exit code (the convention in `EXIT_CODES`).

    `fn` returns 0 (or None) on success, 1 when a check it made found a problem;
    errors become a message on stderr (never a traceback) and their exit code.
    argparse's own usage errors exit 2 before `fn` runs."""
    try:
        return int(fn() or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (PacketlabError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exit_code(exc)
