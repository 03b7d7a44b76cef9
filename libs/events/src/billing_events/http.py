"""Each service's HTTP door: liveness, readiness, Prometheus metrics, and the service's routes.

Readiness means the service can do its work: the database answers, the broker is connected and,
for a consuming service, its consumer holds partitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


def build_http_app(service: str, ready: ReadinessCheck, routers: Sequence[APIRouter] = ()) -> FastAPI:
    app = FastAPI(title=f"billing {service}", version="1.0.0",
                  description=f"Commands and reads of the {service} service")

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "alive", "service": service}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "not ready"}})
    async def readiness() -> JSONResponse:
        checks = await ready()
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
