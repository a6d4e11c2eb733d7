"""The supervisor: routes every request to the owner of its SKUs.

Each SKU belongs to one shard by a stable hash, unless it is hot: a SKU whose
mutation rate crosses the threshold gets an owner of its own, so its group
commits do not queue behind the rest of its shard; after it has been idle for
a while it is handed back. A crashed owner is restarted from durable state.
Only one owner holds a SKU at any time: hand-overs go through
HandOffSku / TakeOverSku, and requests routed in between wait for the state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pykka
import structlog

from actors.messages import (
    AdjustStock,
    CancelOrder,
    ExpectSku,
    HandleRequests,
    HandOffSku,
    HoldSku,
    NeedsCoordination,
    OwnerCrashed,
    PlaceOrder,
    SetStock,
    SkuState,
    Tick,
)
from actors.routing import shard_of
from actors.stock_owner import refuse

log = structlog.get_logger("invsync.supervisor")

# Starts an owner: (kind, index, states or None to load them, SKUs to expect,
# SKUs to leave out when loading) -> ActorRef.
OwnerFactory = Callable[..., Any]


class Supervisor(pykka.ThreadingActor):
    def __init__(
        self,
        *,
        shards: int,
        start_owner: OwnerFactory,
        initial_states: list[dict[str, SkuState]],
        hot_threshold: int = 200,
        hot_idle_seconds: int = 30,
        max_hot: int = 64,
        on_restart: Callable[[str], None] = lambda kind: None,
    ) -> None:
        super().__init__()
        assert len(initial_states) == shards
        self._shard_count = shards
        self._start_owner = start_owner
        self._initial_states = initial_states
        self._hot_threshold = hot_threshold
        self._hot_idle_seconds = hot_idle_seconds
        self._max_hot = max_hot
        self._on_restart = on_restart
        self._shards: list[Any] = []
        self._hot: dict[str, Any] = {}
        self._idle_ticks: Counter[str] = Counter()
        self._rates: Counter[str] = Counter()
        self.restarts = 0
        self.promotions = 0

    def on_start(self) -> None:
        me = self.actor_ref
        self._shards = [
            self._start_owner(kind="shard", index=i, states=states, supervisor=me)
            for i, states in enumerate(self._initial_states)
        ]
        self._initial_states = []

    def on_stop(self) -> None:
        for ref in [*self._hot.values(), *self._shards]:
            if ref.is_alive():
                ref.stop(block=True, timeout=10)

    # --- routing ---------------------------------------------------------------------

    def _owner_of(self, sku: str) -> Any:
        hot = self._hot.get(sku)
        if hot is not None:
            if hot.is_alive():
                return hot
            return self._restart_sku_owner(sku)
        index = shard_of(sku, self._shard_count)
        ref = self._shards[index]
        if not ref.is_alive():
            ref = self._restart_shard(index)
        return ref

    def _route(self, requests: Iterable[Any]) -> None:
        """Send each owner its share of the requests in one message."""
        shares: dict[Any, list[Any]] = {}
        for op in requests:
            skus = op.skus
            self._rates.update(skus)
            owners = {self._owner_of(sku) for sku in skus}
            if len(owners) > 1:
                op.reply.send(NeedsCoordination())
                continue
            shares.setdefault(owners.pop(), []).append(op)
        for owner, share in shares.items():
            try:
                owner.tell(HandleRequests(tuple(share)))
            except pykka.ActorDeadError:
                for op in share:
                    refuse(op, "the stock owner restarted; retry (orders are idempotent by order_id)")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, HandleRequests):
            self._route(message.requests)
        elif isinstance(message, (PlaceOrder, CancelOrder, SetStock, AdjustStock, HoldSku)):
            self._route((message,))
        elif isinstance(message, Tick):
            self._tick()
        elif isinstance(message, OwnerCrashed):
            self._on_crash(message)
        return None

    # --- hot SKUs ----------------------------------------------------------------------

    def _tick(self) -> None:
        for sku in list(self._hot):
            if self._rates.get(sku, 0) == 0:
                self._idle_ticks[sku] += 1
                if self._idle_ticks[sku] >= self._hot_idle_seconds:
                    self._passivate(sku)
            else:
                self._idle_ticks.pop(sku, None)
        for sku, rate in self._rates.items():
            if rate >= self._hot_threshold and sku not in self._hot and len(self._hot) < self._max_hot:
                self._promote(sku)
        self._rates.clear()

    def _promote(self, sku: str) -> None:
        shard = self._owner_of(sku)
        owner = self._start_owner(kind="sku", index=-1, states={}, expect=(sku,), supervisor=self.actor_ref)
        self._hot[sku] = owner
        self.promotions += 1
        shard.tell(HandOffSku(sku, owner))
        log.info("sku promoted to its own actor", sku=sku)

    def _passivate(self, sku: str) -> None:
        owner = self._hot.pop(sku)
        self._idle_ticks.pop(sku, None)
        shard = self._owner_of(sku)
        shard.tell(ExpectSku(sku))
        try:
            owner.tell(HandOffSku(sku, shard))
        except pykka.ActorDeadError:
            # Its state died with it: the shard loads it from the database.
            self._restart_shard(shard_of(sku, self._shard_count))
        log.info("sku passivated back to its shard", sku=sku)

    def hot_skus(self) -> list[str]:
        return sorted(self._hot)

    # --- supervision -------------------------------------------------------------------

    def _restart_shard(self, index: int) -> Any:
        old = self._shards[index]
        if old.is_alive():
            old.stop(block=False)
        ref = self._start_owner(
            kind="shard", index=index, states=None, exclude=frozenset(self._hot), supervisor=self.actor_ref
        )
        self._shards[index] = ref
        self.restarts += 1
        self._on_restart("shard")
        log.warning("shard restarted", index=index)
        return ref

    def _restart_sku_owner(self, sku: str) -> Any:
        ref = self._start_owner(kind="sku", index=-1, states=None, only=sku, supervisor=self.actor_ref)
        self._hot[sku] = ref
        self.restarts += 1
        self._on_restart("sku")
        log.warning("sku owner restarted", sku=sku)
        return ref

    def _on_crash(self, crashed: OwnerCrashed) -> None:
        if crashed.kind == "shard":
            if self._shards[crashed.index] is crashed.owner or self._shards[crashed.index] == crashed.owner:
                self._restart_shard(crashed.index)
        elif crashed.sku is not None and self._hot.get(crashed.sku) == crashed.owner:
            self._restart_sku_owner(crashed.sku)

    # --- introspection ---------------------------------------------------------------------

    def owners(self) -> list[tuple[str, str, Any]]:
        """(kind, name, ref) of every owner, for status and metrics."""
        shards = [("shard", str(i), ref) for i, ref in enumerate(self._shards)]
        return shards + [("sku", sku, ref) for sku, ref in self._hot.items()]
