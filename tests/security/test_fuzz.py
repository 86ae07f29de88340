"""Property-based fuzzing (hypothesis) of every event a client or an extension may send.

A running hub (a real process) gets generated payloads for each event: arbitrary JSON, and
near-valid shapes with each field drawn from arbitrary JSON, from whichever role. Properties:
every event is answered (the ack), every refusal is an `error` event with a known code and the
same body as the ack, nothing is an INTERNAL error, the sender stays connected, the bystanders
(an idle client and an idle extension) stay connected and still work, and the hub logs no error.
Counts of events tried are printed at the end (`pytest -s`) and kept as test properties.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from semantest.protocol import ErrorCode
from tests.conftest import HubProcess, Hubs
from tests.e2e.conftest import KEY, Peer, connect, extension_runner
from tests.security.conftest import merged

KNOWN_CODES = {code.value for code in ErrorCode}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
"""Per event; the whole module sends a few thousand events in well under a minute."""
TRIED: Counter[str] = Counter()
REFUSED: Counter[str] = Counter()
CODES: Counter[str] = Counter()

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["", "*", "downloads", "errors", "0-0", "read", "write",
                              "../../etc/passwd", "\x00", "🙂" * 3, "a" * 300]))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
KNOWN: dict[str, list[str]] = {"id": ["fuzz-ext", "bystander"], "token": []}
"""Ids and share tokens that exist (filled in by the fixture), so payloads reach deep paths."""
ids = (st.text(min_size=1, max_size=40)
       # control characters and separators: an id must never split a key or a schedule entry
       | st.text(alphabet=st.sampled_from("ab-\x00\x1f\x1e\n\t \x7f\u2028:"), min_size=1,
                 max_size=8)
       | st.deferred(lambda: st.sampled_from(KNOWN["id"])))
tokens = st.text(max_size=60) | st.deferred(lambda: st.sampled_from(KNOWN["token"]))
channels = st.lists(st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True), max_size=5)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four a near-valid value, else arbitrary JSON."""
    return st.integers(0, 3).flatmap(lambda n: json_values if n == 0 else valid)


def shaped(required: dict[str, st.SearchStrategy[Any]] | None = None,
           **optional: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a dict with the event's fields (each mostly near-valid) and some junk fields;
    sometimes arbitrary JSON instead."""
    shape = st.fixed_dictionaries(
        {name: mostly(value) for name, value in (required or {}).items()},
        optional={name: mostly(value) for name, value in optional.items()})
    junk = st.dictionaries(st.text(max_size=8), json_values, max_size=2)
    return mostly(st.tuples(shape, junk).map(lambda pair: {**pair[1], **pair[0]}))


PAYLOADS: dict[str, st.SearchStrategy[Any]] = {
    "command": shaped({"type": st.sampled_from(["CLICK", "NAVIGATE", ""])}, id=ids,
                      target=st.fixed_dictionaries({}, optional={"extensionId": ids}),
                      action=json_values, options=json_values, sessionId=ids,
                      correlationId=ids, timeout=st.integers(-10, 10**12)),
    "cancel": shaped({"id": ids}),
    "status": json_values,
    "ping": shaped(timestamp=json_values),
    "progress": shaped({"id": ids}, percent=st.floats(-1, 101) | st.integers(-5, 500),
                       message=json_values, data=json_values),
    "result": shaped({"id": ids, "success": st.booleans()}, data=json_values,
                     error=shaped(code=st.text(max_size=20), message=st.text(max_size=20))),
    "session:create": shaped({"name": st.text(max_size=30)}, persistent=st.booleans()),
    "session:join": shaped({"sessionId": ids}, shareToken=tokens),
    "session:share": shaped({"sessionId": ids}, permissions=st.lists(
        st.sampled_from(["read", "write", "admin"]), max_size=3),
        expiresIn=st.integers(-5, 10**9) | st.text(max_size=6)),
    "session:leave": shaped({"sessionId": ids}),
    "subscribe": shaped({"channels": channels},
                        since=st.from_regex(r"\d{1,14}-\d{1,3}", fullmatch=True)),
    "unsubscribe": shaped({"channels": channels}),
    "publish": shaped({"channel": st.sampled_from(["news", "downloads", "errors", "bad name"])
                      }, message=json_values),
}
ODD_NAMES = ["connect", "disconnect", "message", "error", "*", "$payload-too-large",
             "channel:news", "session:", "pong", "result ", "COMMAND"]


class Fuzzer:
    """A hub, a fuzzing client and extension, and two bystanders, on a loop of their own."""

    def __init__(self, hub: HubProcess) -> None:
        self.hub = hub
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self.run(connect(hub.url, auth={"apiKey": KEY}))
        self.extension = self.run(connect(hub.url, auth={
            "apiKey": KEY, "role": "extension", "extensionId": "fuzz-ext"},
            handlers={"command": lambda command: KNOWN["id"].append(command["id"])}))
        self.bystander_ext = Peer()
        self.bystander_ext.handlers = extension_runner([self.bystander_ext])
        self.run(connect(hub.url, peer=self.bystander_ext, auth={
            "apiKey": KEY, "role": "extension", "extensionId": "bystander",
            "capabilities": ["BYSTANDER"]}))
        self.bystander = self.run(connect(hub.url, auth={"apiKey": KEY}))
        session = self.run(self.client.call("session:create", {"name": "fuzz",
                                                                "persistent": True}))
        share = self.run(self.client.call("session:share", {
            "sessionId": session["sessionId"], "permissions": ["read", "write"]}))
        KNOWN["id"].append(session["sessionId"])
        KNOWN["token"].append(share["shareToken"])

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _send(self, peer: Peer, event: str, args: tuple[Any, ...]) -> Any:
        answer = await peer.sio.call(event, args[0] if len(args) == 1 else args, timeout=5)
        errors = []
        while peer.pending("error"):
            errors.append(await peer.next("error"))
        return answer, errors

    def send(self, sender: str, event: str, *args: Any) -> tuple[Any, list[Any]]:
        peer = self.client if sender == "client" else self.extension
        TRIED[event if event in PAYLOADS else "(other names)"] += 1
        answer, errors = self.run(self._send(peer, event, args))
        assert peer.sio.connected, f"{event} disconnected its sender"
        refused = isinstance(answer, dict) and answer.get("accepted") is False
        if refused:
            REFUSED[event if event in PAYLOADS else "(other names)"] += 1
            CODES[answer["error"]["code"]] += 1
            assert answer["error"]["code"] in KNOWN_CODES, answer
            assert answer["error"]["code"] != "INTERNAL", (event, args, answer)
            assert answer["error"] in errors, "a refusal without its error event"
        for error in errors:
            assert error["code"] in KNOWN_CODES and error["code"] != "INTERNAL", error
        return answer, errors

    def close(self) -> None:
        for peer in (self.client, self.extension, self.bystander, self.bystander_ext):
            if peer.sio.connected:
                self.run(peer.sio.disconnect())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def fuzzer(module_hubs: Hubs, hub_config: dict[str, Any]) -> Iterator[Fuzzer]:
    config = merged(hub_config, commands={"timeout": 500, "maxTimeout": 1000})
    made = Fuzzer(module_hubs.start(config=config))
    yield made
    try:
        check_bystanders(made)
    finally:
        made.close()
        summary = ", ".join(f"{e} {n} ({REFUSED[e]} refused)" for e, n in sorted(TRIED.items()))
        print(f"\nfuzzing: {sum(TRIED.values())} events tried: {summary}")
        print(f"refusals by code: {dict(CODES.most_common())}")


def check_bystanders(fuzzer: Fuzzer) -> None:
    assert fuzzer.hub.process.poll() is None, "the hub died"
    assert fuzzer.bystander.sio.connected and fuzzer.bystander_ext.sio.connected
    ack = fuzzer.run(fuzzer.bystander.call("command", {"type": "BYSTANDER", "n": 1}))
    result = fuzzer.run(fuzzer.bystander.next("result"))
    assert result["id"] == ack["id"] and result["success"] is True
    assert fuzzer.bystander.pending("error") == 0
    output = fuzzer.hub.output()
    assert "Traceback" not in output and " ERROR " not in output, output[-3000:]


FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],  # a failure is shown unshrunk: CI time
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("event", sorted(PAYLOADS))
@FUZZ
@given(data=st.data())
def test_every_event_survives_arbitrary_payloads(fuzzer: Fuzzer, event: str,
                                                 data: st.DataObject) -> None:
    right = "extension" if event in ("progress", "result") else "client"
    wrong = "client" if right == "extension" else "extension"
    sender = data.draw(st.sampled_from([right, right, right, wrong]), label="sender")
    payload = data.draw(PAYLOADS[event], label="payload")
    fuzzer.send(sender, event, payload)


@FUZZ
@given(event=st.sampled_from(ODD_NAMES) | st.text(min_size=1, max_size=20),
       args=st.lists(json_values | st.binary(max_size=16), min_size=1, max_size=3),
       sender=st.sampled_from(["client", "extension"]))
def test_odd_event_names_and_arguments(fuzzer: Fuzzer, event: str, args: list[Any],
                                       sender: str) -> None:
    assume(event not in ("connect", "disconnect", "connect_error"))  # the client's own
    fuzzer.send(sender, event, *args)


@settings(max_examples=60, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(auth=shaped(apiKey=st.sampled_from([KEY, "nope"]), token=st.text(max_size=30),
                   role=st.sampled_from(["client", "extension"]),
                   extensionId=ids, capabilities=st.lists(st.text(max_size=10), max_size=3),
                   name=st.text(max_size=10), version=json_values,
                   maxConcurrency=st.integers(-5, 10**6)))
def test_handshakes_with_arbitrary_auth_objects(fuzzer: Fuzzer, auth: Any) -> None:
    TRIED["(handshake)"] += 1

    async def attempt() -> str:
        peer = Peer()
        refusals: asyncio.Queue[Any] = asyncio.Queue()
        peer.sio.on("connect_error", refusals.put_nowait)
        try:
            await peer.sio.connect(fuzzer.hub.url, auth=auth, transports=["websocket"],
                                   wait_timeout=10)
        except Exception:
            refusal = await asyncio.wait_for(refusals.get(), 10)
            assert refusal["message"] in KNOWN_CODES and refusal["message"] != "INTERNAL"
            assert refusal["data"]["code"] == refusal["message"]
            return "refused"
        await peer.sio.disconnect()
        return "accepted"

    if fuzzer.run(attempt()) == "refused":
        REFUSED["(handshake)"] += 1


@FUZZ
@given(depth=st.integers(1, 80), lists=st.lists(st.booleans(), min_size=80, max_size=80),
       leaf=st.none() | st.integers() | st.text(max_size=12))
def test_nesting_beyond_the_limit(fuzzer: Fuzzer, depth: int, lists: list[bool],
                                  leaf: Any) -> None:
    """A command nested `depth` levels below its `data` (lists and objects mixed) is refused
    with VALIDATION_FAILED naming websocket.maxDepth (32 by default) exactly when too deep."""
    value = leaf
    for as_list in lists[:depth]:
        value = [value] if as_list else {"k": value}
    answer, _ = fuzzer.send("client", "command", {"type": "CLICK", "data": value})
    error = answer.get("error") or {} if isinstance(answer, dict) else {}
    refused_for_depth = error.get("code") == "VALIDATION_FAILED" and "maxDepth" in str(
        error.get("message"))
    assert refused_for_depth == (depth + 1 > 32), (depth, answer)


def test_zz_bystanders_are_untouched(fuzzer: Fuzzer, record_property: Callable[..., None]
                                     ) -> None:
    """Runs last in the module: after every fuzzing test, the bystanders still work."""
    check_bystanders(fuzzer)
    record_property("events_tried", sum(TRIED.values()))
    assert sum(TRIED.values()) >= EXAMPLES * len(PAYLOADS)
