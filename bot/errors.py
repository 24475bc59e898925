"""One exception tree for deskbot.

Every error a user can cause derives from :class:`DeskbotError`. It carries a stable
machine-readable ``code`` and an HTTP ``status``; the web layer maps it to
``{"error": {"code": ..., "message": ...}}`` in one place and the CLI prints its message
without a traceback.
"""

from __future__ import annotations


class DeskbotError(Exception):
    """Base of every error deskbot raises on purpose."""

    code = "error"
    status = 500

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.fields:
            body["details"] = {k: v for k, v in self.fields.items() if v is not None}
        return {"error": body}


class SettingsError(DeskbotError):
    """A setting is missing or has a bad value; the message names the key."""

    code = "bad_setting"


class InputError(DeskbotError):
    """Input from a client or a file is invalid; nothing was changed."""

    code = "bad_request"
    status = 400


class ImportFileError(InputError):
    """A file given to the importer is unreadable; carries the file and line number."""

    code = "bad_import_file"

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}", path=path, line=line)
        self.path = path
        self.line = line
        self.problem = problem


class PayloadTooLargeError(InputError):
    """A request body is over its route's cap; it was not read further."""

    code = "request_entity_too_large"  # what aiohttp's own 413 becomes on the other routes
    status = 413


class NotFoundError(DeskbotError):
    code = "not_found"
    status = 404


class AuthError(DeskbotError):
    code = "unauthorized"
    status = 401


class ForbiddenError(DeskbotError):
    code = "forbidden"
    status = 403


class ConflictError(DeskbotError):
    code = "conflict"
    status = 409


class RateLimitedError(DeskbotError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class ModelError(DeskbotError):
    """A model artifact or index is missing, corrupt or does not match what was expected."""

    code = "model_error"
    status = 503


class BackendUnavailableError(DeskbotError):
    """A remote service deskbot depends on (LLM server, chat platform) did not answer."""

    code = "backend_unavailable"
    status = 503


class OverloadedError(RateLimitedError):
    """The server is at its cap of work in flight; the client should retry after a while."""

    code = "overloaded"
    status = 503


class GoneError(DeskbotError):
    """The resource existed but is closed or expired for good."""

    code = "gone"
    status = 410
