"""Each service's HTTP door: liveness, readiness, Prometheus metrics, and the service's routes.

Liveness means the process works: its event loop answers (a database or broker outage never
fails it, so an orchestrator does not restart a process that only waits for them). Readiness
means it can do its job: the checks the runtime names as needed decide it (the database for
every process serving an API; the broker too for a process that only publishes); the others
(the broker and the partitions of a consuming service) are reported beside them, so an outage
shows in the body without taking an API that needs only the database out of service.

Every refusal of every service has one shape (:class:`Problem`)::

    {"code": "invalid_request", "message": "the request has invalid fields",
     "errors": [{"field": "amount.minor", "message": "Input should be greater than 0"}]}

``code`` is for machines, ``message`` for people, ``errors`` names each field at fault and why
(never the value sent: it may be personal data). Field errors are 422, an unknown account 404,
a state that refuses the command 409, a missing or expired token 401, another account's token
403. :func:`problem` answers one; :class:`ApiError` raises one; :func:`build_http_app` installs
the handlers that give FastAPI's own validation errors and HTTP errors the same shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing_contracts.catalog.common import require_check_digit
from billing_contracts.money import PositiveMoney
from billing_events import metrics as _metrics
from billing_events.errors import DomainError
from billing_events.languages import DEFAULT_LANGUAGE, chosen_language, sentence
from billing_events.logging import get_logger

log = get_logger(__name__)
C = TypeVar("C")

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]

AccountPath = Annotated[str, Path(pattern=r"^[0-9]{12}$", description="12-digit personal account number"),
                        AfterValidator(require_check_digit)]
"""An account number in a route's path: a wrong check digit is a 422 at the door, like any input."""


class RequestBody(BaseModel):
    """Base of every request body a route declares: a field it does not know is refused (422),
    never silently dropped (a typo in ``request_id`` would otherwise lose the retry's safety)."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the field at fault, e.g. amount.minor")
    message: str = Field(description="What is wrong with it (the value sent is never repeated)")
    code: str | None = Field(default=None, description="The broken rule, for machines")


class Problem(BaseModel):
    """The body of every refusal of every service."""

    code: str = Field(description="Machine-readable reason, e.g. unknown_account")
    message: str = Field(description="One sentence for people")
    errors: list[FieldProblem] = Field(default_factory=list, description="Field-level errors (422)")


FieldErrors = Iterable[FieldProblem | Mapping[str, Any]]

# The code a bare HTTP error gets when it does not bring its own.
_DEFAULT_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 409: "conflict", 415: "unsupported_media_type",
                  422: "invalid_request", 429: "too_many_requests", 500: "internal_error",
                  503: "unavailable"}


def _field_problems(errors: FieldErrors) -> list[dict[str, Any]]:
    out = []
    for error in errors:
        item = error if isinstance(error, FieldProblem) else FieldProblem.model_validate(error)
        out.append(item.model_dump(exclude_none=True))
    return out


def problem(status: int, code: str, message: str, errors: FieldErrors = (), *,
            headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A refusal in the one shape; ``extra`` adds keys beside it (e.g. ``until`` of a lock)."""
    body: dict[str, Any] = {"code": code, "message": message, "errors": _field_problems(errors)}
    body.update(jsonable_encoder(extra))
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


class ApiError(StarletteHTTPException):
    """Raise to refuse a request with :func:`problem`'s shape (from a route or a dependency)."""

    def __init__(self, status: int, code: str, message: str, errors: FieldErrors = (), *,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(status, message, headers=dict(headers) if headers else None)
        self.code, self.message = code, message
        self.errors = _field_problems(errors)
        self.extra = extra


def _positive_amount_schema() -> dict[str, Any]:
    schema = PositiveMoney.model_json_schema()
    schema["properties"]["minor"]["minimum"] = 1
    schema["title"] = "PositiveAmount"
    return schema


PositiveAmount = Annotated[PositiveMoney, WithJsonSchema(_positive_amount_schema())]
"""An amount a request moves (a transfer, a redemption): more than zero, which its schema says as
well as its check, so a client generated from the document never sends 0."""


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting refusals with the :class:`Problem` body."""
    return {status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses}


CallerKind = Literal["anonymous", "subscriber", "service"]


def callers(*who: CallerKind) -> dict[str, Any]:
    """``openapi_extra`` saying which tokens a route takes (``x-callers``): a cabinet builder
    reads there whether a subscriber's token may call it (always for its own account only)."""
    return {"x-callers": list(who)}


def json_body(model: type[BaseModel], *, description: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` documenting a request body that a route validates itself with ``model``
    (so the service gives its own field errors): the OpenAPI shows the model's schema."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    body: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


# --- validation errors in the one shape ---------------------------------------------------------

_WHERE = ("body", "query", "path", "header", "cookie")
# Messages pydantic builds with a fragment of the input in them: said without it.
_GENERIC_MESSAGES = {
    "union_tag_invalid": "Input tag does not match any of the expected tags",
    "uuid_parsing": "Input should be a valid UUID",
    "url_parsing": "Input should be a valid URL",
    "json_invalid": "The body is not valid JSON",
    "model_attributes_type": "Input should be an object",
}


def field_problem(detail: Mapping[str, Any], language: str = DEFAULT_LANGUAGE) -> FieldProblem:
    """One pydantic error detail as a :class:`FieldProblem`, without the input it carried, in
    ``language`` where the catalogue has pydantic's kind of error (``field:<type>``; our own
    validators' ``value_error`` sentences stay as written)."""
    loc = [str(part) for part in detail.get("loc", ())]
    if loc and loc[0] in _WHERE:
        where, loc = loc[0], loc[1:]
    else:
        where = "body"
    kind = str(detail.get("type", "invalid"))
    if kind == "json_invalid":
        loc = []  # the position in the text is not a field
    message = _GENERIC_MESSAGES.get(kind)
    if message is None:
        message = str(detail.get("msg", "invalid value"))
        if kind == "value_error":
            message = message.removeprefix("Value error, ")  # our validators' own words
        elif kind.endswith("_parsing") and ", " in message:
            message = message.split(", ", 1)[0]  # "Input should be a valid date, <what was found>"
    context = {name: value for name, value in (detail.get("ctx") or {}).items() if name != "error"}
    message = sentence(f"field:{kind}", language, fallback=message, params=context)
    return FieldProblem(field=".".join(loc) or where, message=message, code=kind)


def invalid_request(details: Iterable[Mapping[str, Any]] | ValidationError, request: Request) -> JSONResponse:
    """422 for pydantic's error details (of the request, or of a command model a route built),
    in the words of the request's reader (:func:`reader_language`)."""
    if isinstance(details, ValidationError):
        details = details.errors()
    errors = [field_problem(detail, reader_language(request)) for detail in details]
    fields = ", ".join(dict.fromkeys(error.field for error in errors))
    message, language = _in_words(request, "invalid_request", f"the request has invalid fields: {fields}",
                                  {"fields": fields})
    return problem(422, "invalid_request", message, errors, headers=language)


def command_of(build: Callable[[], C]) -> C:
    """The command a route builds from the path, the body and the caller's token: what its model
    refuses (a token's subject that is no account number, a limit the body does not hold) is
    the request's fault, answered 422 as the body's own validation is, never a failure (500)."""
    try:
        return build()
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def reader_language(request: Request) -> str:
    """Who reads a refusal: the language the caller's token names (a subscriber's chosen one),
    else the request's ``Accept-Language``, else the default."""
    caller = getattr(request.state, "caller", None)
    return chosen_language(getattr(caller, "language", None), request.headers.get("accept-language"))


def _in_words(request: Request, code: str, message: str, params: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """A refusal's sentence in the reader's language, and the Content-Language header saying which."""
    language = reader_language(request)
    return sentence(code, language, fallback=message, params=params), {"Content-Language": language}


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return invalid_request(exc.errors(), request)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, ApiError):
        message, language = _in_words(request, exc.code, exc.message, exc.extra)
        return problem(exc.status_code, exc.code, message, exc.errors, headers=headers | language, **exc.extra)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    code = _DEFAULT_CODES.get(status, f"http_{status}")
    message, language = _in_words(request, code, message, {})
    return problem(status, code, message, headers=headers | language)


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    message, language = _in_words(request, exc.code, exc.message, exc.params)
    # A field error that repeats the refusal's sentence says it in the reader's words too.
    errors = [{**error, "message": message} if error.get("message") == exc.message else error
              for error in exc.field_errors()]
    return problem(exc.http_status, exc.code, message, errors, headers=exc.headers() | language,
                   **exc.details())


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.error("request failed", method=request.method, path=request.url.path,
              error=type(exc).__name__, exc_info=exc)
    return problem(500, "internal_error", "the service failed to answer; the failure is logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(Exception, _on_crash)


# --- the OpenAPI document ---------------------------------------------------------------------------


def _hoist_definitions(node: Any, into: dict[str, Any]) -> None:
    """Move the ``$defs`` of inline schemas (see :func:`json_body`) into the components."""
    if isinstance(node, dict):
        definitions = node.pop("$defs", None)
        if definitions:
            _hoist_definitions(definitions, into)
            into.update(definitions)
        for value in node.values():
            _hoist_definitions(value, into)
    elif isinstance(node, list):
        for value in node:
            _hoist_definitions(value, into)


def _problem_refs(document: dict[str, Any]) -> None:
    """FastAPI documents its validation errors as HTTPValidationError; ours are Problems."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, model in (("Problem", Problem), ("FieldProblem", FieldProblem)):
        if name not in schemas:
            generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
            _hoist_definitions(generated, schemas)
            schemas[name] = generated
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is None:
                continue
            for content in answer.get("content", {}).values():
                if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    content["schema"] = dict(problem_ref)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


class RequestMetrics:
    """Counts and times every request by method, route template (``/accounts/{number}``, never
    the number itself: one series per route, not per account) and status."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the response says otherwise: a crash answers 500 outside this middleware

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # set by the router on a match
            method = scope["method"]
            _metrics.HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            _metrics.HTTP_SECONDS.labels(self.service, method, route).observe(time.perf_counter() - started)


@dataclass(frozen=True)
class DoorPolicy:
    """What every HTTP door of a process does whatever the route: from the service's settings."""

    api_docs: bool = True
    """Serve /docs, /redoc and /openapi.json."""
    strict_transport: bool = False
    """Tell browsers to use HTTPS only (Strict-Transport-Security): outside development."""
    max_request_bytes: int = 64 * 1024
    """A larger body is answered 413, unread."""


SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
STRICT_TRANSPORT = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
NO_STORE = (b"cache-control", b"no-store")
"""Every answer may carry a token (a login), an account's balance or history: no cache keeps one
unless its route says otherwise."""


class _BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "request_too_large", f"the request body is larger than {limit} bytes")


class DoorGuard:
    """Security headers and ``Cache-Control: no-store`` on every answer; a body over the limit
    answered 413 before it is read (its Content-Length) or as soon as it passes the limit
    (a body sent without one)."""

    def __init__(self, app: ASGIApp, policy: DoorPolicy) -> None:
        self.app, self.policy = app, policy
        self.headers = [*SECURITY_HEADERS, *([STRICT_TRANSPORT] if policy.strict_transport else [])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in (*self.headers, NO_STORE) if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        limit = self.policy.max_request_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            too_large = _BodyTooLarge(limit)
            answer = problem(413, too_large.code, too_large.message)
            await answer(scope, receive, guarded_send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, guarded_send)


def _serve_metrics(app: FastAPI) -> None:
    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def build_metrics_app() -> FastAPI:
    """``/metrics`` alone, for a port of its own that only the scraper reaches: the series say
    what happened (refusals, lockouts, throttles), which the API's callers must not read."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    _serve_metrics(app)
    return app


def build_http_app(service: str, ready: ReadinessCheck, routers: Sequence[APIRouter] = (), *,
                   needed: Collection[str] | None = None, metrics: bool = True,
                   doors: DoorPolicy = DoorPolicy()) -> FastAPI:
    """``needed``: the checks of ``ready`` that decide readiness (None: every one). ``metrics``:
    serve /metrics here too (False when a port of its own serves it, :func:`build_metrics_app`)."""
    docs = doors.api_docs
    app = FastAPI(title=f"billing {service}", version="1.0.0",
                  description=f"Commands and reads of the {service} service. Every refusal is a "
                              "Problem: {code, message, errors[{field, message}]}.",
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    install_problem_handlers(app)
    app.add_middleware(RequestMetrics, service=service)
    app.add_middleware(DoorGuard, policy=doors)  # outside the metrics: a 413 costs no route lookup

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "alive", "service": service}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "not ready"}})
    async def readiness() -> JSONResponse:
        checks = await ready()
        deciding = [name for name in checks if needed is None or name in needed]
        status = 200 if all(checks[name] for name in deciding) else 503
        return JSONResponse({"ready": status == 200, "checks": checks, "needed": deciding}, status_code=status)

    if metrics:
        _serve_metrics(app)

    for router in routers:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        # Built on first use, so routers included after this function returns are in it.
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            _hoist_definitions(document.get("paths", {}), document.setdefault("components", {})
                               .setdefault("schemas", {}))
            _problem_refs(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
