"""The engine's HTTP resources, one router each, in the order create_app includes them (the
order of the paths in the OpenAPI document)."""

from fastapi import APIRouter

from eventgate.engine.routes import event_types, events, legacy, operations, plugins

ROUTERS: tuple[APIRouter, ...] = (events.router, event_types.router, legacy.router,
                                  plugins.router, operations.router)
