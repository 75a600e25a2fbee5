"""The one module that imports ``vowpalwabbit``: locked ``--cb_explore_adf`` and regression
workspaces.

``VWModel`` owns one Workspace and serialises every call on a lock (a Workspace is not
thread-safe). It guards against the crashes measured in ``/work/shared/notes/vowpalwabbit.md``:

- a multi-line example with zero action lines segfaults: ``NoCandidateError`` instead;
- a cost of ``inf`` silently turns every later PMF into NaN, and probabilities of 0 or above 1
  are accepted silently: costs must be finite and within ``COST_LIMIT``, probabilities in
  (0, 1];
- every parsed example is finished (even when predict or learn raises), all lines together;
- lines are joined with newlines by us, and a line containing a newline is refused.

Examples are parsed with the Workspace's own parser and passed to ``predict_multi`` /
``learn_multi`` directly: the same C++ calls ``Workspace.predict``/``learn`` end in, without
the Python ``Example`` wrappers, which cost three times the parse itself (measured: 20 actions,
26 us instead of 82 us). ``tests/bandit/test_vw.py`` checks both paths give the same PMFs.

``predict_joined`` goes further: the router sends the same action lines (a kept
``bandit.features.Candidates``) with request after request, so their parsed examples are kept,
per joined text, and only the shared line is parsed per prediction. VW merges the shared
features into the action examples for a prediction and takes them out again afterwards
(its ``shared_feature_merger``), so the kept examples come back unchanged: the PMFs are the
same bit for bit as parsing everything afresh (tested, with learning in between, for
epsilon-greedy, SquareCB and cover; also seen for bag, softmax, RND and RegCB). Kept
examples are finished together with a shared example when they drop out of the
``MAX_KEPT_ACTION_SETS`` most recently used, or when the model closes. Learning always parses
its example afresh: VW changes the examples it learns from.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import vowpalwabbit

from bandit.errors import ModelStateError, NoCandidateError
from bandit.features import check_example_lines

COST_LIMIT = 100.0  # |cost| above this is refused: costs are scaled to about [-1, 1]
MAX_KEPT_ACTION_SETS = 64  # parsed action sets predict_joined keeps (~20 examples each)
_RELEASE_SHARED = "shared |"  # finishes kept action examples as one whole multi-line example


def validate_label(cost: float, prob: float) -> None:
    """Raise ``ValueError`` unless ``cost`` is finite and bounded and ``prob`` is in (0, 1]."""
    if not isinstance(cost, float | int) or not math.isfinite(cost) or abs(cost) > COST_LIMIT:
        raise ValueError(f"cost must be finite with |cost| <= {COST_LIMIT}, got {cost!r}")
    if not isinstance(prob, float | int) or not math.isfinite(prob) or not 0.0 < prob <= 1.0:
        raise ValueError(f"probability must be in (0, 1], got {prob!r}")


def _check_shared(shared: str) -> None:
    if not shared.startswith("shared "):
        raise ValueError("the shared line must start with 'shared '")
    check_example_lines((shared,))


def _check_lines(shared: str, actions: Sequence[str]) -> None:
    if not actions:
        raise NoCandidateError("no action lines: VW is never called with zero actions")
    _check_shared(shared)
    check_example_lines(actions)


class _Locked:
    """What both workspaces share: the lock every call holds, and closing exactly once."""

    _ws: vowpalwabbit.Workspace

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self.learned = 0

    def _check_open(self) -> None:
        if self._closed:
            raise ModelStateError("the VW model is closed")

    def close(self) -> None:
        """Finish the Workspace (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release_all()
                self._ws.finish()

    def _release_all(self) -> None:
        """Hook: finish examples kept between calls (lock held, before the Workspace ends)."""


class VWModel(_Locked):
    """One ``--cb_explore_adf`` Workspace behind a lock.

    >>> m = VWModel("--cb_explore_adf --epsilon 0.1 --quiet")
    >>> pmf = m.predict("shared |S a", ["|A x", "|A y"])
    >>> len(pmf), round(sum(pmf), 6)
    (2, 1.0)
    >>> m.learn("shared |S a", ["|A x", "|A y"], chosen=0, cost=0.5, prob=pmf[0])
    >>> m.close()
    """

    def __init__(self, args: str, *, model_path: Path | None = None) -> None:
        if "--cb_explore_adf" not in args.split() and model_path is None:
            raise ValueError("VWModel needs --cb_explore_adf in its arguments")
        super().__init__()
        self.args = args
        try:
            if model_path is None:
                self._ws = vowpalwabbit.Workspace(args)
            else:
                self._ws = vowpalwabbit.Workspace(f"-i {model_path} --quiet")
        except RuntimeError as exc:
            raise ModelStateError(f"VW could not start with {args!r}: {exc}") from exc
        # joined action text -> its parsed examples, least recently used first
        self._kept: OrderedDict[str, list[vowpalwabbit.pyvw.Example]] = OrderedDict()

    @contextmanager
    def _parsed(self, text: str, n_actions: int) -> Iterator[list[vowpalwabbit.pyvw.Example]]:
        """Parse one multi-line example and always finish it, whole (a partly finished or
        unfinished example crashes or leaks). The caller holds the lock."""
        self._check_open()
        ec = self._ws._parse(text)
        try:
            if len(ec) != n_actions + 1:
                raise ValueError(f"VW parsed {len(ec)} lines, expected {n_actions + 1}")
            yield ec
        finally:
            self._ws._finish_example_multi_ex(ec)

    # -- predict and learn ---------------------------------------------------------------
    def predict(self, shared: str, actions: Sequence[str]) -> list[float]:
        """The PMF over ``actions`` (same order) for this shared context."""
        _check_lines(shared, actions)
        return self._predict(shared + "\n" + "\n".join(actions), len(actions))

    def predict_joined(self, shared: str, actions_text: str, n_actions: int) -> list[float]:
        """``predict`` with the ``n_actions`` action lines already joined by newlines and
        checked (``bandit.features.Candidates``); the shared line is checked here. The action
        examples are parsed once per distinct text and kept (see the module docstring)."""
        if n_actions < 1:
            raise NoCandidateError("no action lines: VW is never called with zero actions")
        _check_shared(shared)
        with self._lock:
            self._check_open()
            actions = self._kept_actions(actions_text, n_actions)
            head = self._ws._parse(shared)
            try:
                if len(head) != 1:
                    raise ValueError(f"VW parsed {len(head)} lines from the shared line")
                self._ws.predict_multi(head + actions)
                pmf = list(head[0].get_action_scores())
            except BaseException:
                # a failed prediction may leave the action examples changed: never reuse them
                self._release(self._kept.pop(actions_text))
                raise
            finally:
                self._ws._finish_example_multi_ex(head)
        if len(pmf) != n_actions:
            raise ModelStateError(f"VW returned {len(pmf)} probabilities for {n_actions}")
        return pmf

    def _kept_actions(self, text: str, n_actions: int) -> list[vowpalwabbit.pyvw.Example]:
        """The parsed examples of ``text``, kept from an earlier call or parsed now. Lock held."""
        actions = self._kept.get(text)
        if actions is not None:
            self._kept.move_to_end(text)
            return actions
        actions = self._ws._parse(text)
        if len(actions) != n_actions:
            self._release(actions)
            raise ValueError(f"VW parsed {len(actions)} lines, expected {n_actions}")
        self._kept[text] = actions
        if len(self._kept) > MAX_KEPT_ACTION_SETS:
            self._release(self._kept.popitem(last=False)[1])
        return actions

    def _release(self, actions: list[vowpalwabbit.pyvw.Example]) -> None:
        """Finish kept action examples, whole, behind a shared example. Lock held."""
        self._ws._finish_example_multi_ex(self._ws._parse(_RELEASE_SHARED) + actions)

    def _release_all(self) -> None:
        while self._kept:
            self._release(self._kept.popitem(last=False)[1])

    @property
    def kept_action_sets(self) -> int:
        """How many parsed action sets ``predict_joined`` keeps now."""
        return len(self._kept)

    def _predict(self, text: str, n_actions: int) -> list[float]:
        with self._lock, self._parsed(text, n_actions) as ec:
            self._ws.predict_multi(ec)
            pmf = list(ec[0].get_action_scores())
        if len(pmf) != n_actions:
            raise ModelStateError(f"VW returned {len(pmf)} probabilities for {n_actions}")
        return pmf

    def learn(
        self, shared: str, actions: Sequence[str], *, chosen: int, cost: float, prob: float
    ) -> None:
        """Learn that action ``chosen`` (drawn with ``prob``) cost ``cost`` (lower is better)."""
        _check_lines(shared, actions)
        validate_label(cost, prob)
        if not 0 <= chosen < len(actions):
            raise ValueError(f"chosen index {chosen} out of range for {len(actions)} actions")
        lines = list(actions)
        lines[chosen] = f"0:{cost!r}:{prob!r} {lines[chosen]}"
        text = shared + "\n" + "\n".join(lines)
        with self._lock, self._parsed(text, len(actions)) as ec:
            self._ws.learn_multi(ec)
            self.learned += 1

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the model (resumable) to ``path`` atomically: temp file + ``os.replace``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with self._lock:
                self._check_open()
                self._ws.save(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="vw-") as tmp:
            path = Path(tmp) / "model.vw"
            self.save(path)
            return path.read_bytes()

    @classmethod
    def from_bytes(cls, args: str, data: bytes) -> VWModel:
        """A model from ``to_bytes()`` output; ``args`` is recorded, the file's own win."""
        with tempfile.TemporaryDirectory(prefix="vw-") as tmp:
            path = Path(tmp) / "model.vw"
            path.write_bytes(data)
            model = cls(args, model_path=path)
        return model

    def copy(self) -> VWModel:
        """A trained copy (through a save/load round trip)."""
        return VWModel.from_bytes(self.args, self.to_bytes())

    def weights_json(self) -> str:
        """Every non-zero weight as JSON (for tests comparing two models exactly)."""
        with self._lock:
            self._check_open()
            return str(self._ws.json_weights())

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> VWModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VWRegressor(_Locked):
    """One scalar-label Workspace (e.g. logistic regression) behind a lock: ``learn`` takes
    ``label weight |ns features`` lines, ``predict`` the same without the label.

    >>> r = VWRegressor("--loss_function logistic --link logistic --quiet")
    >>> for _ in range(20):
    ...     r.learn("1 |f a")
    ...     r.learn("-1 |f b")
    >>> r.predict("|f a") > 0.5 > r.predict("|f b")
    True
    >>> r.close()
    """

    def __init__(self, args: str, *, model: bytes | None = None) -> None:
        if "--cb_explore_adf" in args.split():
            raise ValueError("VWRegressor takes scalar labels; use VWModel for --cb_explore_adf")
        super().__init__()
        self.args = args
        try:
            if model is None:
                self._ws = vowpalwabbit.Workspace(args)
            else:
                with tempfile.TemporaryDirectory(prefix="vw-") as tmp:
                    path = Path(tmp) / "model.vw"
                    path.write_bytes(model)
                    self._ws = vowpalwabbit.Workspace(f"-i {path} --quiet")
        except RuntimeError as exc:
            raise ModelStateError(f"VW could not start with {args!r}: {exc}") from exc

    @staticmethod
    def _check(line: str) -> None:
        if "\n" in line or "\r" in line:
            raise ValueError("an example line must not contain a newline")
        if "|" not in line:
            raise ValueError("an example line needs at least one namespace ('|')")

    def learn(self, line: str) -> None:
        """Learn one labelled line (``label [weight] |ns ...``)."""
        self._check(line)
        with self._lock:
            self._check_open()
            self._ws.learn(line)
            self.learned += 1

    def predict(self, line: str) -> float:
        """The prediction for one unlabelled line (a probability with ``--link logistic``)."""
        self._check(line)
        with self._lock:
            self._check_open()
            value = float(self._ws.predict(line))
        if not math.isfinite(value):
            raise ModelStateError(f"VW predicted {value!r}")
        return value

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="vw-") as tmp:
            path = Path(tmp) / "model.vw"
            with self._lock:
                self._check_open()
                self._ws.save(str(path))
            return path.read_bytes()
