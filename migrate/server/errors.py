"""API errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import json
from typing import Any

from migrate.errors import MigrateError


class ApiError(MigrateError):
    """An error the server answers with; the body mirrors the real API's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body_bytes(self) -> bytes:
        """The JSON error object, encoded."""
        return json.dumps(self.body()).encode()


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 `invalid_request_error`."""
    return ApiError(400, message, param=param, code=code)


def conversation_not_found(conversation_id: str) -> ApiError:
    """The 404 the real API gives for an unknown conversation id."""
    return ApiError(404, f"Conversation with id '{conversation_id}' not found.")


def item_not_found(item_id: str, *, param: str | None = None, status: int = 404) -> ApiError:
    """The error the real API gives for an unknown item id."""
    return ApiError(status, f"Item with id '{item_id}' not found.", param=param)


def server_error() -> ApiError:
    """A 500 like the real API's."""
    return ApiError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


def overloaded() -> ApiError:
    """A 503 like the real API's when it sheds load."""
    return ApiError(
        503,
        "The server is overloaded or not ready yet.",
        type="server_error",
    )
