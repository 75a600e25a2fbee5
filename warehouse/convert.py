"""Columnar conversion between the shared models and Arrow tables (and back from rows).

The writer appends batches as Arrow tables (``INSERT INTO t BY NAME SELECT * FROM batch``),
which is two orders of magnitude faster than ``executemany``. Building the columns is a
transpose of per-row value tuples, a few microseconds a row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter

import pyarrow as pa
import pydantic_core

from warehouse.models import Decision, Endpoint, Feedback, ProbeResult

TS = pa.timestamp("us", tz="UTC")

#: Arrow types of the ``probes`` columns (same order as ``warehouse.schema.PROBE_COLUMNS``).
PROBE_ARROW_SCHEMA = pa.schema(
    [
        ("endpoint_id", pa.string()),
        ("started_at", TS),
        ("source", pa.string()),
        ("outcome", pa.string()),
        ("status_code", pa.int32()),
        ("detail", pa.string()),
        ("prompt_name", pa.string()),
        ("event_id", pa.string()),
        ("conn_reused", pa.bool_()),
        ("connect_ms", pa.float32()),
        ("ttft_ms", pa.float32()),
        ("reasoning_ttft_ms", pa.float32()),
        ("itl_ms_mean", pa.float32()),
        ("itl_ms_p50", pa.float32()),
        ("itl_ms_p90", pa.float32()),
        ("itl_ms_max", pa.float32()),
        ("tpot_ms", pa.float32()),
        ("e2e_ms", pa.float32()),
        ("chunks", pa.int32()),
        ("tokens_per_chunk", pa.float32()),
        ("input_tokens", pa.int32()),
        ("output_tokens", pa.int32()),
        ("usage_reported", pa.bool_()),
        ("retry_after_s", pa.float32()),
    ]
)


def _columns(rows: Sequence[object], schema: pa.Schema) -> pa.Table:
    arrays = [pa.array(list(map(attrgetter(f.name), rows)), type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


_PROBE_FIELDS = tuple(PROBE_ARROW_SCHEMA.names)
_CHUNK = 2048


def _probe_chunk(rows: Sequence[ProbeResult]) -> pa.RecordBatch:
    # A validated model keeps its field values in ``__dict__`` in field order: one C-level
    # ``tuple(values)`` per row and a transpose build the columns. Anything unexpected falls
    # back to attribute access.
    if tuple(rows[0].__dict__) == _PROBE_FIELDS:
        try:
            columns = list(zip(*[tuple(r.__dict__.values()) for r in rows], strict=True))
        except ValueError:
            columns = []
        if len(columns) == len(_PROBE_FIELDS):
            arrays = [
                pa.array(col, type=f.type)
                for col, f in zip(columns, PROBE_ARROW_SCHEMA, strict=True)
            ]
            return pa.RecordBatch.from_arrays(arrays, schema=PROBE_ARROW_SCHEMA)
    return _columns(rows, PROBE_ARROW_SCHEMA).to_batches()[0]


def probes_to_arrow(rows: Sequence[ProbeResult]) -> pa.Table:
    """One Arrow table with a column per ``ProbeResult`` field.

    Built in chunks of 2,048 rows: the per-row tuples die young, so the garbage collector
    never walks a large batch (which doubled the cost on 200,000-row batches).
    """
    if not rows:
        return PROBE_ARROW_SCHEMA.empty_table()
    batches = [_probe_chunk(rows[i : i + _CHUNK]) for i in range(0, len(rows), _CHUNK)]
    return pa.Table.from_batches(batches, schema=PROBE_ARROW_SCHEMA)


DECISION_ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("created_at", TS),
        ("router", pa.string()),
        ("context", pa.string()),
        ("candidates", pa.list_(pa.string())),
        ("probabilities", pa.list_(pa.float64())),
        ("chosen", pa.string()),
        ("chosen_prob", pa.float64()),
        ("fallbacks", pa.list_(pa.string())),
        ("policy_version", pa.string()),
        ("shadow", pa.bool_()),
        ("served", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("max_tokens", pa.int32()),
        ("arms", pa.list_(pa.int64())),
        ("metadata", pa.string()),
    ]
)

#: Arrow types of the ``decision_arms`` columns.
ARM_ARROW_SCHEMA = pa.schema(
    [
        ("arm_id", pa.int64()),
        ("endpoint_id", pa.string()),
        ("features", pa.string()),
        ("first_seen", TS),
    ]
)

ARMS_KEY = "a"

#: One candidate as a decision logged it: (``arm_id``, endpoint id, its features as JSON text).
ArmRef = tuple[int, str, str]


def arm_id(endpoint_id: str, features_json: str) -> int:
    """The ``decision_arms`` key of one candidate's logged features: a signed 64-bit hash of
    the endpoint id and the exact JSON text. Equal texts share one row however many decisions
    list them; a different text is a different row (a collision needs ~4 billion distinct
    candidates to become likely)."""
    digest = hashlib.blake2b(
        endpoint_id.encode() + b"\0" + features_json.encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "little", signed=True)


def arm_ref(endpoint_id: str, features_json: str) -> ArmRef:
    return (arm_id(endpoint_id, features_json), endpoint_id, features_json)


def stored_context(ctx: Mapping[str, object]) -> dict[str, object]:
    """A decision's flat context in the form the warehouse stores: the ``p.*`` and ``r.*``
    keys as they are, and the candidates' ``a.<endpoint id>.<feature>`` keys nested as
    ``"a": {endpoint id: {feature: value}}``, which names each endpoint once instead of once
    per feature (with the live figures' rounding in ``bandit.features``, 4.9 KB instead of
    11.7 KB per decision with 20 candidates). ``flat_context`` inverts it."""
    out: dict[str, object] = {}
    arms: dict[str, dict[str, object]] = {}
    for key, value in ctx.items():
        if key.startswith("a.") and "." in key[2:]:
            endpoint_id, name = key[2:].rsplit(".", 1)  # endpoint ids may hold dots
            arms.setdefault(endpoint_id, {})[name] = value
        else:
            out[key] = value
    if arms:
        out[ARMS_KEY] = arms
    return out


def flat_context(stored: Mapping[str, object]) -> dict[str, object]:
    """The flat context (``a.<endpoint id>.<feature>`` keys) of a stored one; contexts
    stored flat, as before the nested form, come back unchanged."""
    out = {k: v for k, v in stored.items() if k != ARMS_KEY}
    arms = stored.get(ARMS_KEY)
    if isinstance(arms, Mapping):
        for endpoint_id, feats in arms.items():
            if isinstance(feats, Mapping):
                for name, value in feats.items():
                    out[f"a.{endpoint_id}.{name}"] = value
    return out


def compact_json(value: object) -> str:
    """Compact JSON text, by pydantic-core's encoder: the same values as ``json.dumps`` (NaN
    included) in a fifth of the time; it runs for every decision logged, on the router's
    thread. Both ways of logging a context (``stored_parts``) use it, so that a candidate's
    text, and so its ``arm_id``, is the same whichever way its decision came."""
    return pydantic_core.to_json(value).decode()


def stored_parts(ctx: Mapping[str, object]) -> tuple[str, tuple[ArmRef, ...]]:
    """A decision's context as the warehouse stores it: the JSON text of its own keys
    (``p.*``, ``r.*``) for ``decisions.context``, and its candidates, each once, as
    ``decision_arms`` rows that ``decisions.arms`` lists by ``arm_id``.

    A context that splits itself (``bandit.features.LoggedContext.stored_parts``: each
    candidate's text and id made once per ``Arm``, shared by every decision that lists it)
    saves encoding and hashing the candidates again for every decision."""
    split = getattr(ctx, "stored_parts", None)
    if split is not None:
        return split()  # type: ignore[no-any-return]
    stored = stored_context(ctx)
    arms = stored.pop(ARMS_KEY, {})
    refs = tuple(arm_ref(e, compact_json(f)) for e, f in arms.items())  # type: ignore[union-attr]
    return compact_json(stored), refs


def joined_context(context_text: str, arms: Iterable[tuple[str, str]]) -> str:
    """The context JSON as it was stored whole before ``decision_arms`` (and as
    ``flat_context`` reads it): ``context_text`` with the candidates' ``(endpoint id,
    features JSON)`` nested under ``"a"``."""
    members = ",".join(json.dumps(e) + ":" + f for e, f in arms)
    if not members:
        return context_text
    body = context_text.strip()[1:-1].strip()
    return "{" + body + ("," if body else "") + f'"{ARMS_KEY}":{{{members}}}}}'


DecisionRow = tuple[object, ...]


def decision_parts(d: Decision) -> tuple[DecisionRow, tuple[ArmRef, ...]]:
    """One decision's ``DECISION_ARROW_SCHEMA`` values, in order, and the candidates it lists
    (``stored_parts``). The warehouse builds this when a decision is logged, on the router's
    thread, a few microseconds per decision, and stacks the rows into Arrow columns there,
    ``DECISION_CHUNK`` at a time (``warehouse.writer``): the writer thread does not hold the GIL
    for 600 decisions at once while the event loop waits for it."""
    context, arms = stored_parts(d.context)
    return (
        d.event_id,
        d.created_at,
        d.router,
        context,
        d.candidates,
        d.probabilities,
        d.chosen,
        d.chosen_prob,
        d.fallbacks,
        d.policy_version,
        d.shadow,
        d.served,
        d.prompt_tokens,
        d.max_tokens,
        [a[0] for a in arms],
        compact_json(d.metadata) if d.metadata else None,
    ), arms


def decision_row(d: Decision) -> DecisionRow:
    """``decision_parts`` without the candidates' rows."""
    return decision_parts(d)[0]


def arms_to_arrow(rows: Iterable[tuple[ArmRef, datetime]]) -> pa.Table:
    """``decision_arms`` rows (each candidate with the time it was first logged)."""
    pairs = list(rows)
    columns = ([ref[0] for ref, _ in pairs], [ref[1] for ref, _ in pairs],
               [ref[2] for ref, _ in pairs], [at for _, at in pairs])
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, ARM_ARROW_SCHEMA, strict=True)],
        schema=ARM_ARROW_SCHEMA,
    )


#: Rows per Arrow chunk of decisions: converting Python values to Arrow is one C call that
#: holds the GIL throughout (it never lets another thread in); 64 rows hold it ~0.3 ms.
DECISION_CHUNK = 64


def decision_chunk(rows: Sequence[DecisionRow]) -> pa.RecordBatch:
    """``decision_row`` tuples as one Arrow record batch (one C call per column)."""
    return pa.RecordBatch.from_arrays(
        [pa.array(column, type=f.type)
         for column, f in zip(zip(*rows, strict=True), DECISION_ARROW_SCHEMA, strict=True)],
        schema=DECISION_ARROW_SCHEMA,
    )  # fmt: skip


def decision_rows_to_arrow(rows: Sequence[DecisionRow]) -> pa.Table:
    """``decision_row`` tuples as an Arrow table, built ``DECISION_CHUNK`` rows at a time.

    One ``pa.table`` over 600 decisions held the GIL for 3 ms, and for 15-60 ms while the
    allocator was still taking fresh pages: the event loop stood still meanwhile. Between
    chunks the interpreter hands the GIL over (``sys.setswitchinterval``). The writer's
    buffer converts decisions as they come instead (``warehouse.writer``); this serves the
    retry of a failed batch."""
    if not rows:
        return DECISION_ARROW_SCHEMA.empty_table()
    batches = [
        decision_chunk(rows[i : i + DECISION_CHUNK]) for i in range(0, len(rows), DECISION_CHUNK)
    ]
    return pa.Table.from_batches(batches, schema=DECISION_ARROW_SCHEMA)


FEEDBACK_ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("score", pa.float64()),
        ("comment", pa.string()),
        ("received_at", TS),
    ]
)


def feedback_to_arrow(rows: Sequence[Feedback]) -> pa.Table:
    """Feedback rows as an Arrow table."""
    return _columns(rows, FEEDBACK_ARROW_SCHEMA)


ENDPOINT_ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("base_url", pa.string()),
        ("wire_format", pa.string()),
        ("model", pa.string()),
        ("provider", pa.string()),
        ("price_in_per_mtok", pa.float64()),
        ("price_out_per_mtok", pa.float64()),
        ("context_window", pa.int32()),
        ("tags", pa.list_(pa.string())),
        ("updated_at", TS),
    ]
)


def endpoints_to_arrow(rows: Iterable[tuple[Endpoint, datetime]]) -> pa.Table:
    """Endpoints (with the time each was upserted) as an Arrow table. Never any API key."""
    columns: dict[str, list[object]] = {f.name: [] for f in ENDPOINT_ARROW_SCHEMA}
    for e, updated_at in rows:
        columns["id"].append(e.id)
        columns["base_url"].append(e.base_url)
        columns["wire_format"].append(str(e.wire_format))
        columns["model"].append(e.model)
        columns["provider"].append(e.provider)
        columns["price_in_per_mtok"].append(e.price_in_per_mtok)
        columns["price_out_per_mtok"].append(e.price_out_per_mtok)
        columns["context_window"].append(e.context_window)
        columns["tags"].append(list(e.tags))
        columns["updated_at"].append(updated_at)
    return pa.table(columns, schema=ENDPOINT_ARROW_SCHEMA)


LEARNED_ARROW_SCHEMA = pa.schema([("event_id", pa.string()), ("learned_at", TS)])


def learned_to_arrow(rows: Iterable[tuple[str, datetime]]) -> pa.Table:
    """``(event_id, learned_at)`` pairs as an Arrow table."""
    pairs = list(rows)
    return pa.table(
        {"event_id": [p[0] for p in pairs], "learned_at": [p[1] for p in pairs]},
        schema=LEARNED_ARROW_SCHEMA,
    )


def decision_from_row(
    row: Mapping[str, object], arms: Mapping[int, tuple[str, Mapping[str, object]]] | None = None
) -> Decision:
    """A ``Decision`` from one ``decisions`` row (as a column-name mapping) and the
    ``decision_arms`` rows it lists (``arm_id`` -> (endpoint id, parsed features)); rows
    written before ``decision_arms`` (no ``arms``) hold their candidates in their context."""
    data = dict(row)
    ids = data.pop("arms", None) or ()
    metadata = data.pop("metadata", None)
    if isinstance(metadata, str):
        data["metadata"] = json.loads(metadata)
    context = data.get("context")
    if isinstance(context, str):
        stored = json.loads(context)
        if ids:
            known = arms or {}
            missing = [i for i in ids if i not in known]
            if missing:
                raise KeyError(f"decision {data.get('event_id')} lists candidates that "
                               f"decision_arms lacks: {missing[:3]}")
            stored[ARMS_KEY] = {known[i][0]: known[i][1] for i in ids}
        data["context"] = flat_context(stored)
    return Decision.model_validate(data)


def feedback_from_row(row: Mapping[str, object]) -> Feedback:
    """A ``Feedback`` from one ``feedback`` row (as a column-name mapping)."""
    return Feedback.model_validate(dict(row))


def table_rows(table: pa.Table) -> list[dict[str, object]]:
    """Rows of an Arrow table as dicts (timestamps become aware datetimes)."""
    return table.to_pylist()
