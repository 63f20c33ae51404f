"""Domain errors and their one mapping to RFC 9457 problem details.

    DomainError                    (400 unless a subclass says otherwise)
    ├── NotAuthenticated           401  missing, bad or revoked token
    ├── Forbidden                  403  valid caller, wrong role or account state
    ├── NotFound                   404  absent, or not visible to this caller
    ├── Conflict                   409  duplicate, idempotency key reuse, races
    │   └── InvalidTransition      409  the object's state does not allow this
    ├── Unprocessable              422  well-formed but refused by a rule
    ├── PaymentDeclined            402
    └── TooManyRequests            429  a rate limit; carries Retry-After

Every error carries a stable problem ``type`` so clients can branch on the kind of
error, not on its English ``detail``. The type is ``<the market's base URL>/problems/<kind>``
and resolves: ``GET /problems/<kind>`` says what the problem means and what to do
(``market.web.problems``, which holds every kind the code raises). The domain knows no
host name, so bodies built here carry the path (``/problems/<kind>``) and the HTTP edge
makes it absolute (``absolute_type``) with ``MARKET_PUBLIC_URL`` or the request's own
base URL.
"""

from typing import Any

PROBLEMS_PATH = "/problems/"  # a problem type is <base URL>/problems/<kind>
PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    status = 400
    kind = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, kind: str | None = None, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if kind is not None:
            self.kind = kind
        self.extra = extra or {}
        self.headers = headers or {}  # response headers, e.g. Retry-After

    @property
    def type(self) -> str:
        """The problem type, relative to the market's base URL (``absolute_type``)."""
        return problem_type(self.kind)

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class NotAuthenticated(DomainError):
    status, kind, title = 401, "not-authenticated", "Not authenticated"


class Forbidden(DomainError):
    status, kind, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, kind, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, kind, title = 409, "conflict", "Conflict"


class InvalidTransition(Conflict):
    kind, title = "invalid-transition", "Transition not allowed"

    def __init__(self, what: str, current: str, action: str) -> None:
        super().__init__(
            f"{what} is {current}; {action} is not allowed in that state",
            extra={"current_status": current},
        )


class Unprocessable(DomainError):
    status, kind, title = 422, "unprocessable", "Unprocessable request"


class PaymentDeclined(DomainError):
    status, kind, title = 402, "payment-declined", "Payment declined"


class TooManyRequests(DomainError):
    status, kind, title = 429, "too-many-requests", "Too many requests"


# Every kind ``ledger_problem`` gives (the registry of problems lists each).
LEDGER_KINDS = ("not-found", "unknown-checkpoint", "malformed-note", "bad-cosignature", "ledger-error")


def ledger_problem(exc: Exception, instance: str | None = None) -> dict[str, Any]:
    """The problem for an error the ledger library raised (``ledger.errors.LedgerError``
    and the log's own): the one mapping from the ledger's error tree to HTTP."""
    from ledger.errors import MalformedError, VerificationError
    from ledger.log import NotFoundError, UnknownCheckpointError

    status, kind, title = 500, "ledger-error", "Ledger error"
    if isinstance(exc, NotFoundError):
        status, kind, title = 404, "not-found", "Not found"
    elif isinstance(exc, UnknownCheckpointError):
        status, kind, title = 409, "unknown-checkpoint", "Conflict"
    elif isinstance(exc, MalformedError):
        status, kind, title = 422, "malformed-note", "Unprocessable request"
    elif isinstance(exc, VerificationError):
        status, kind, title = 422, "bad-cosignature", "Unprocessable request"
    body = problem(status, kind, title, str(exc))
    if instance:
        body["instance"] = instance
    return body


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A problem body for errors that do not come from the domain (routing, validation, crashes)."""
    body: dict[str, Any] = {"type": problem_type(kind), "title": title, "status": status, "detail": detail}
    body.update(extra)
    return body


def problem_type(kind: str, base: str = "") -> str:
    """``<base>/problems/<kind>``; with no base, the path alone."""
    return base.rstrip("/") + PROBLEMS_PATH + kind


def kind_of(type_uri: str) -> str:
    """The kind a problem type names (its last path segment)."""
    return type_uri.rstrip("/").rsplit("/", 1)[-1]


def absolute_type(body: dict[str, Any], base: str) -> dict[str, Any]:
    """``body`` with a type relative to the market (``/problems/<kind>``) made absolute
    under ``base``, the market's public base URL."""
    relative = body.get("type")
    if isinstance(relative, str) and relative.startswith(PROBLEMS_PATH):
        return {**body, "type": base.rstrip("/") + relative}
    return body
