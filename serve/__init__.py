"""The feedback-nlp HTTP server: ``serve.app:create_app`` for ASGI servers, ``feedback-nlp serve`` to run it.

Nothing heavy is imported here, so `feedback-nlp` commands do not pay for FastAPI.
"""

__all__ = ["Settings", "create_app"]


def __getattr__(name):
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(name)
