"""Trained router models in the running sidecar: list them, look at their trade-off graphs,
and switch routing to one without a restart.

``switchyard train`` stores every model it trains, with its trade-off graph, in the
warehouse's ``router_models`` table (``warehouse.training``) and marks the newest one active.

- At start, after the router model is restored, the sidecar routes with the active trained
  model unless it already does (its checkpoint says which trained model it descends from, so
  what it learned online since is kept across restarts).
- ``POST /v1/admin/models/{model_id}/activate`` switches to a stored model now.
- ``POST /v1/admin/models/import`` copies a model from another DuckDB file (the warehouse a
  ``switchyard train --db`` run wrote while the sidecar held its own) and switches to it.
- ``GET /v1/admin/models`` lists them; ``GET /v1/admin/models/{model_id}/tradeoff`` gives the
  graph as JSON, or ``?format=png`` / ``?format=html``.

Switching is the router's ``swap_policy``: decisions still pending are learned by the new
model when their feedback arrives, and the new model is checkpointed at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path

import duckdb
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bandit.errors import ModelStateError
from serving.auth import Access
from serving.bandit_router import BanditRouter
from serving.errors import Conflict, NotFound, Unprocessable
from serving.routes import RouteSpec, json_response, read_json
from serving.state import ROUTER, WAREHOUSE
from warehouse.store import Warehouse, open_read_only
from warehouse.training import RouterModelInfo, TrainingStore, TrainingStoreError

log = logging.getLogger(__name__)


class ImportModelRequest(BaseModel):
    """Where to copy a trained model from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db: str = Field(min_length=1, description="Path of the DuckDB file `switchyard train` wrote.")
    model_id: str | None = Field(
        default=None, description="Model to import (default: that file's active, else newest)."
    )


class ModelsResponse(BaseModel):
    ok: bool = True
    active: str | None
    routing: str | None
    models: list[dict[str, object]]


class ActivatedResponse(BaseModel):
    ok: bool = True
    model_id: str
    model_version: str


def _describe(info: RouterModelInfo) -> dict[str, object]:
    tradeoff = info.tradeoff or {}
    routers = tradeoff.get("routers") if isinstance(tradeoff, dict) else None
    return {
        "model_id": info.model_id,
        "version": info.version,
        "created_at": info.created_at.isoformat() if isinstance(info.created_at, datetime)
        else str(info.created_at),
        "run_id": info.run_id,
        "kind": info.kind,
        "active": info.active,
        "heldout": tradeoff.get("heldout") if isinstance(tradeoff, dict) else None,
        "frontier": [r.get("router") for r in routers if isinstance(r, dict) and r.get("frontier")]
        if isinstance(routers, list) else [],
    }


class ModelSwitcher:
    """Loads stored models into the router and remembers the active trade-off graph."""

    def __init__(self, warehouse: Warehouse, router: object) -> None:
        self.store = TrainingStore(warehouse)
        self.router = router if isinstance(router, BanditRouter) else None
        self._tradeoff: dict[str, object] | None = None

    def tradeoff(self) -> dict[str, object] | None:
        """The trade-off graph of the model routing now (for the dashboard)."""
        return self._tradeoff

    def _bandit(self) -> BanditRouter:
        if self.router is None:
            raise Conflict("this sidecar's router cannot load trained models")
        return self.router

    async def activate(self, model_id: str) -> str:
        """Route with stored model ``model_id``; returns the new model version."""
        router = self._bandit()
        try:
            data = await asyncio.to_thread(self.store.load_model, model_id)
        except TrainingStoreError as exc:
            raise NotFound(str(exc)) from None
        try:
            version = await router.load_trained(model_id, data)
        except ModelStateError as exc:
            raise Unprocessable(f"model {model_id!r} cannot be loaded: {exc}") from None
        await asyncio.to_thread(self.store.activate, model_id)
        info = await asyncio.to_thread(self.store.model_info, model_id)
        self._tradeoff = dict(info.tradeoff) if info is not None and info.tradeoff else None
        log.info("routing with trained model %s (%s)", model_id, version)
        return version

    async def sync_at_start(self) -> None:
        """Switch to the active stored model unless the router already descends from it."""
        if self.router is None:
            return
        active = await asyncio.to_thread(self.store.active_model)
        if active is None:
            return
        if self.router.trained_model_id == active.model_id:
            self._tradeoff = dict(active.tradeoff) if active.tradeoff else None
            return
        await self.activate(active.model_id)

    async def import_from(self, db: str, model_id: str | None) -> str:
        """Copy a model (with its graph) from another warehouse file; returns the new id."""
        path = Path(db).expanduser()
        try:
            row = await asyncio.to_thread(_read_model, path, model_id)
        except FileNotFoundError:
            raise Unprocessable(f"db: no DuckDB file at {db!r}") from None
        except duckdb.IOException as exc:
            raise Conflict(f"db: {db!r} cannot be opened (still in use by a training run?): "
                           f"{exc}") from None
        except duckdb.Error as exc:
            raise Unprocessable(f"db: {db!r} holds no router models: {exc}") from None
        if row is None:
            which = f"model {model_id!r}" if model_id else "any router model"
            raise NotFound(f"{db!r} has no {which}")
        kind, model, tradeoff, plot, html, run_id = row
        new_id = await asyncio.to_thread(
            self.store.save_model, run_id=run_id, kind=kind, model=model,
            tradeoff=json.loads(tradeoff) if tradeoff else None, plot_png=plot, html=html,
        )
        await self.activate(new_id)
        return new_id


def _read_model(path: Path, model_id: str | None) -> tuple[str, bytes, str | None, bytes | None,
                                                           str | None, str | None] | None:
    con = open_read_only(path)
    try:
        cols = "kind, model, tradeoff, plot, html, run_id"
        if model_id:
            rows = con.execute(f"SELECT {cols} FROM router_models WHERE model_id = ?",
                               [model_id]).fetchall()
        else:
            rows = con.execute(f"SELECT {cols} FROM router_models "
                               "ORDER BY active DESC, version DESC LIMIT 1").fetchall()
    finally:
        con.close()
    if not rows:
        return None
    kind, model, tradeoff, plot, html, run_id = rows[0]
    return (str(kind), bytes(model), str(tradeoff) if tradeoff is not None else None,
            bytes(plot) if plot is not None else None, str(html) if html is not None else None,
            str(run_id) if run_id is not None else None)


SWITCHER = web.AppKey("model_switcher", ModelSwitcher)


async def list_models(request: web.Request) -> web.StreamResponse:
    switcher = request.app[SWITCHER]
    infos = await asyncio.to_thread(switcher.store.list_models)
    active = next((i.model_id for i in infos if i.active), None)
    routing = switcher.router.trained_model_id if switcher.router is not None else None
    return json_response({"ok": True, "active": active, "routing": routing,
                          "models": [_describe(i) for i in infos]})


async def activate(request: web.Request) -> web.StreamResponse:
    model_id = request.match_info["model_id"]
    version = await request.app[SWITCHER].activate(model_id)
    return json_response({"ok": True, "model_id": model_id, "model_version": version})


async def import_model(request: web.Request) -> web.StreamResponse:
    req = await read_json(request, ImportModelRequest)
    switcher = request.app[SWITCHER]
    new_id = await switcher.import_from(req.db, req.model_id)
    version = request.app[ROUTER].model_version
    return json_response({"ok": True, "model_id": new_id, "model_version": version})


async def tradeoff(request: web.Request) -> web.StreamResponse:
    model_id = request.match_info["model_id"]
    fmt = request.query.get("format", "json")
    store = request.app[SWITCHER].store
    try:
        if fmt == "png":
            png = await asyncio.to_thread(store.model_plot, model_id)
            if png is None:
                raise NotFound(f"model {model_id!r} has no stored graph")
            return web.Response(body=png, content_type="image/png")
        if fmt == "html":
            page = await asyncio.to_thread(store.model_html, model_id)
            if page is None:
                raise NotFound(f"model {model_id!r} has no stored graph")
            return web.Response(text=page, content_type="text/html")
        if fmt != "json":
            raise Unprocessable(f"format: must be json, png or html, got {fmt!r}")
        info = await asyncio.to_thread(store.model_info, model_id)
    except TrainingStoreError as exc:
        raise NotFound(str(exc)) from None
    if info is None:
        raise NotFound(f"no router model {model_id!r}")
    return json_response({"ok": True, "model_id": model_id, "tradeoff": info.tradeoff})


async def _switcher_ctx(app: web.Application) -> object:
    """Cleanup context: after the router is restored, route with the active trained model."""
    switcher = app[SWITCHER]
    try:
        await switcher.sync_at_start()
    except Exception:  # noqa: BLE001 - a bad stored model must not stop the sidecar
        log.exception("could not switch to the active trained model; routing as restored")
    yield


def install(app: web.Application) -> None:
    """Create the switcher (after ``ROUTER`` and ``WAREHOUSE`` are set) and its start hook."""
    app[SWITCHER] = ModelSwitcher(app[WAREHOUSE], app[ROUTER])
    app.cleanup_ctx.append(_switcher_ctx)  # type: ignore[arg-type]


_ERRORS = (401, 403, 429)
MODEL_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", "/v1/admin/models", list_models, Access.ADMIN,
              "Trained router models stored in the warehouse; which is active and routing.",
              None, ModelsResponse, errors=_ERRORS),
    RouteSpec("POST", "/v1/admin/models/import", import_model, Access.ADMIN,
              "Copy a trained model from another DuckDB file and route with it.",
              ImportModelRequest, ActivatedResponse, errors=(*_ERRORS, 400, 404, 409, 422),
              examples=({"db": "var/train.duckdb"},)),
    RouteSpec("POST", "/v1/admin/models/{model_id}/activate", activate, Access.ADMIN,
              "Route with a stored trained model from now on (no restart).",
              None, ActivatedResponse, errors=(*_ERRORS, 404, 409, 422)),
    RouteSpec("GET", "/v1/admin/models/{model_id}/tradeoff", tradeoff, Access.ADMIN,
              "A model's trade-off graph: JSON, or ?format=png / ?format=html.",
              None, None, errors=(*_ERRORS, 404, 422)),
)  # fmt: skip
