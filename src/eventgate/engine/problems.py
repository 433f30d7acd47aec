"""RFC 9457 problem details: every 4xx and 5xx the engine sends says what was wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[str] = []


class ProblemError(Exception):
    """Raised by handlers; rendered as problem+json with the given status."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, errors=errors or [])
        self.headers = dict(headers or {})


def problem_response(problem: Problem,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem.model_dump(), status_code=problem.status,
                        media_type=PROBLEM_JSON, headers=headers)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring problem+json for these statuses."""
    return {status: {"model": Problem, "content": {PROBLEM_JSON: {}},
                     "description": "problem details (RFC 9457)"} for status in statuses}


def _location(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.problem, exc.headers)


async def on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [f"{_location(e)}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
    # A missing or malformed tenant header is a bad request, not a bad entity.
    header = any(e.get("loc", ("",))[0] == "header" for e in exc.errors())
    status = 400 if malformed or header else 422
    title = ("Malformed JSON" if malformed else "Missing or malformed header" if header
             else "Invalid request")
    return problem_response(Problem(title=title, status=status,
                                    detail="; ".join(errors)[:2000], errors=errors[:50]))


async def on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(Problem(title=str(exc.detail), status=exc.status_code,
                                    detail=str(exc.detail)), headers=exc.headers)
