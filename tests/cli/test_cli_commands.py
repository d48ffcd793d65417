"""Each command of ``eventspype`` against the real server, through click's runner."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import redis
from _cli_support import (
    HOSTILE_MODULE,
    Run,
    dead_lettered,
    good_envelope,
    hostile_envelope,
    lines,
    ok,
)
from _redis_support import REDIS_URL, Inbox, wait_until

from eventspype import EventPublication, FunctionalEventSubscriber, versions
from eventspype.broker.redis import RedisBroker, RedisStreamBroker


def _one_line_error(output: str) -> str:
    assert "Traceback" not in output
    [line] = [x for x in output.splitlines() if x.strip()]
    assert line.startswith("Error: ")
    return line


def test_version_lists_every_installed_distribution(run: Run) -> None:
    shown = ok(run("--version"))
    assert "eventspype-cli 1.0.0" in shown
    assert shown.splitlines() == [f"{n} {v}" for n, v in versions().items()]
    assert json.loads(ok(run("--json", "--version"))) == versions()


def test_streams_shows_lengths_groups_consumers_and_dead_letters(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    key = f"{prefix}{{ORDERS}}"
    for number in range(3):
        client.xadd(key, {"event": good_envelope("ORDERS", number)})
    client.xgroup_create(key, "billing", id="0")
    client.xreadgroup("billing", "worker-1", {key: ">"}, count=1)
    client.xadd(f"{key}:dead", {"event": b"x"})

    streams, groups, consumers = (
        [line.split() for line in table.splitlines()]
        for table in ok(run("streams")).split("\n\n")
    )
    assert streams[0] == ["Streams"]
    assert groups[0] == ["Groups"]
    assert streams[2][:2] == ["ORDERS", "3"]
    assert streams[2][-2:] == ["1", "1"]
    assert groups[2][:5] == ["ORDERS", "billing", "1", "1", "2"]
    assert consumers[2][:4] == ["ORDERS", "billing", "worker-1", "1"]

    [stream] = json.loads(ok(run("streams", "--json")))["streams"]
    assert (stream["channel"], stream["length"], stream["dead_letters"]) == (
        "ORDERS",
        3,
        1,
    )
    [group] = stream["groups"]
    assert (group["name"], group["pending"], group["lag"]) == ("billing", 1, 2)
    assert group["consumers"][0]["name"] == "worker-1"
    # Read-only: no group appeared, nothing was acknowledged.
    assert [g["name"] for g in client.xinfo_groups(key)] == [b"billing"]
    assert client.xpending(key, "billing")["pending"] == 1


def test_unknown_group_and_channel_are_one_line_errors(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    client.xadd(f"{prefix}{{ORDERS}}", {"event": b"x"})
    result = run("streams", "--group", "nobody")
    assert result.exit_code == 1
    assert "nobody" in _one_line_error(result.output)
    result = run("dead-letters", "list", "PAYMENTS")
    assert result.exit_code == 1
    assert "PAYMENTS" in _one_line_error(result.output)
    result = run("dead-letters", "list", "ORDERS", "--group", "nobody")
    assert result.exit_code == 1
    assert "nobody" in _one_line_error(result.output)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:1/0", "cannot reach Redis at redis://127.0.0.1:1/0"),
        ("redis://user:s3cret@127.0.0.1:1/0", "redis://user:***@127.0.0.1:1/0"),
        ("http://127.0.0.1/", "Redis URL must specify"),
    ],
)
def test_a_server_down_or_a_wrong_url_is_one_line(
    run: Run, url: str, expected: str
) -> None:
    for command in (["streams"], ["dead-letters", "list", "X"], ["tail"]):
        result = run(*command, url=url)
        assert result.exit_code == 1, result.output
        line = _one_line_error(result.output)
        assert expected in line
        assert "s3cret" not in line


def test_health_exits_0_or_1_with_a_one_line_reason(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    key = f"{prefix}{{ORDERS}}"
    for number in range(4):
        client.xadd(key, {"event": good_envelope("ORDERS", number)})
    client.xgroup_create(key, "billing", id="0")
    client.xadd(f"{key}:dead", {"event": b"x"})

    ready = run("health", "--group", "billing", "--max-lag", "4", "--max-dead", "1")
    assert (ready.exit_code, ready.output) == (
        0,
        "ready: 1 streams, lag 4, pending 0, dead letters 1\n",
    )
    lagging = run("health", "--max-lag", "3")
    assert (lagging.exit_code, lagging.output) == (1, "not ready: lag 4 > 3\n")
    dead = run("health", "--max-dead", "0", "--json")
    assert dead.exit_code == 1
    assert json.loads(dead.output) == {
        "ready": False, "reason": "dead letters 1 > 0", "connected": True,
        "streams": 1, "lag": 4, "pending": 0, "dead_letters": 1,
    }  # fmt: skip
    unknown = run("health", "--group", "nobody")
    assert unknown.exit_code == 1
    assert unknown.output.startswith("not ready: no stream under ")
    assert "'nobody'" in unknown.output
    down = run("health", url="redis://127.0.0.1:1/0")
    assert down.exit_code == 1
    assert down.output.startswith("not ready: cannot reach Redis")
    assert len(down.output.splitlines()) == 1
    down_json = json.loads(run("health", "--json", url="redis://127.0.0.1:1/0").output)
    assert down_json["ready"] is False
    assert down_json["connected"] is False


def test_dead_letters_list_and_show_a_hostile_entry_without_running_it(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    hostile, good = dead_lettered(
        client, prefix, "ORDERS", hostile_envelope("ORDERS"), good_envelope("ORDERS", 1)
    )
    listed = ok(run("dead-letters", "list", "orders"))  # as the tag is written
    assert hostile.id in listed
    assert good.id in listed
    assert f"{HOSTILE_MODULE}:Planted\\x1b[2J" in listed
    assert "\x1b" not in listed

    shown = ok(run("dead-letters", "show", "ORDERS", hostile.id))
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert '"value": "\\u001b]0;pwned\\u0007"' in shown
    assert "unregistered_class" in shown
    assert HOSTILE_MODULE not in sys.modules
    assert "EVENTSPYPE_REDIS_SIDE_EFFECT" not in os.environ

    document = json.loads(ok(run("dead-letters", "list", "ORDERS", "--json")))
    first = document["dead_letters"][0]
    assert (first["id"], first["event_module"], first["group"]) == (
        hostile.id,
        HOSTILE_MODULE,
        "billing",
    )
    assert first["payload"] == {"value": "\x1b]0;pwned\x07"}
    assert ok(
        run(
            "dead-letters", "list", "ORDERS", "-n", "1", "--after", hostile.id, "--json"
        )
    )
    missing = run("dead-letters", "show", "ORDERS", "1-1")
    assert missing.exit_code == 1
    assert "1-1" in _one_line_error(missing.output)


def test_replay_republishes_checks_envelopes_only_and_says_so(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    _good, junk = dead_lettered(
        client, prefix, "ORDERS", good_envelope("ORDERS", 1), b"not json"
    )
    length = client.xlen(f"{prefix}{{ORDERS}}")

    text = ok(run("dead-letters", "replay", "ORDERS"))

    assert "re-published 1 dead letter(s) to ORDERS" in text
    assert "envelope checks only" in text
    assert f"{junk.id}: invalid_json" in text
    assert client.xlen(f"{prefix}{{ORDERS}}") == length + 1
    [left] = client.xrange(f"{prefix}{{ORDERS}}:dead")
    assert left[0].decode() == junk.id
    again = json.loads(ok(run("dead-letters", "replay", "ORDERS", "--json")))
    assert again["republished"] == 0
    assert again["refused"][0]["id"] == junk.id
    assert again["checked"] == "envelope only"


def test_purge_asks_first_unless_yes(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    letters = dead_lettered(client, prefix, "ORDERS", b"one", b"two", b"three")
    dead = f"{prefix}{{ORDERS}}:dead"

    refused = run("dead-letters", "purge", "ORDERS", input="n\n")
    assert refused.exit_code == 1
    assert "Delete 3 dead letter(s) of ORDERS?" in refused.output
    assert client.xlen(dead) == 3

    one = run("dead-letters", "purge", "ORDERS", "--id", letters[0].id, input="y\n")
    assert "deleted 1 dead letter(s)" in ok(one)
    assert client.xlen(dead) == 2

    rest = json.loads(ok(run("dead-letters", "purge", "ORDERS", "--yes", "--json")))
    assert rest == {"channel": "ORDERS", "deleted": 2}
    assert client.xlen(dead) == 0


@pytest.fixture
def event_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An operator's module in the current directory (as `publish` looks there)."""
    name = f"ops_events_{os.urandom(4).hex()}"
    (tmp_path / f"{name}.py").write_text(
        "import dataclasses\n\n\n@dataclasses.dataclass\nclass Refund:\n"
        "    order_id: int\n    amount: float\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return name


def test_publish_sends_a_typed_event_through_the_real_brokers(
    run: Run, client: redis.Redis, prefix: str, event_module: str
) -> None:
    spec = f"{event_module}:Refund"
    payload = '{"order_id": 7, "amount": 12.5}'
    receiver = RedisBroker(
        client, channel_prefix=prefix, allowed_modules=(event_module,)
    )
    inbox = Inbox()
    try:
        receiver.subscribe("REFUNDS", inbox.subscriber)
        wait_until(lambda: client.pubsub_numsub(f"{prefix}REFUNDS")[0][1] == 1)
        text = ok(run("publish", "refunds", "--class", spec, "--json", payload))
        assert text == f"published {spec} on Pub/Sub channel REFUNDS\n"
        [event] = inbox.wait_for(1)
    finally:
        receiver.close()
    assert (type(event).__name__, event.order_id, event.amount) == ("Refund", 7, 12.5)

    document = json.loads(ok(run("--json", "publish", "REFUNDS", "--class", spec,
                                 "--json", payload, "--stream")))  # fmt: skip
    assert document == {
        "published": True,
        "channel": "REFUNDS",
        "stream": True,
        "class": spec,
    }
    [(_, fields)] = client.xrange(f"{prefix}{{REFUNDS}}")
    sent = json.loads(fields[b"event"])
    assert (sent["event_class"], json.loads(sent["payload"])) == (
        "Refund",
        {"order_id": 7, "amount": 12.5},
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--class", "nomodule_here_x:Refund", "--json", "{}"], "cannot import"),
        (["--class", "{mod}:Nope", "--json", "{}"], "has no 'Nope'"),
        (["--class", "{mod}", "--json", "{}"], "expected module:Name"),
        (["--class", "{mod}:Refund", "--json", '{"order_id": "x"}'], "order_id"),
        (["--class", "{mod}:Refund", "--json", "{"], "--json"),
    ],
)
def test_publish_refuses_a_wrong_class_or_payload_without_a_traceback(
    run: Run, event_module: str, args: list[str], expected: str
) -> None:
    result = run(
        "publish", "REFUNDS", *[a.replace("{mod}", event_module) for a in args]
    )
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_tail_streams_from_the_beginning_shows_good_and_refused_entries(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    key = f"{prefix}{{ORDERS}}"
    first = client.xadd(key, {"event": good_envelope("ORDERS", 1)}).decode()
    client.xadd(key, {"event": hostile_envelope("ORDERS")})
    client.xadd(key, {"event": good_envelope("USERS", 2)})  # not this channel's tag
    client.xadd(f"{prefix}{{OTHER}}", {"event": good_envelope("OTHER", 3)})

    text = lines(run("tail", "ORD*", "--streams", "--since", "0", "--count", "3"))

    assert len(text) == 3
    assert text[0].split(maxsplit=2)[2] == (
        f'ORDERS {first}  _redis_support:OrderPlaced  {{"order_id": 1, "amount": 2.5}}'
    )
    assert f"{HOSTILE_MODULE}:Planted\\x1b[2J" in text[1]
    assert "REFUSED tag_mismatch: event_tag 'USERS'" in text[2]
    assert "OTHER" not in "\n".join(text)
    assert HOSTILE_MODULE not in sys.modules
    # XREAD, not XREADGROUP: no group was made.
    assert client.xinfo_groups(key) == []

    after = json.loads(
        ok(run("tail", "ORDERS", "--streams", "--since", first, "-n", "1", "--json"))
    )
    assert (after["source"], after["event_module"], after["problem"]) == (
        "stream",
        HOSTILE_MODULE,
        None,
    )


def test_since_without_streams_is_a_usage_error(run: Run) -> None:
    result = run("tail", "--since", "10m")
    assert result.exit_code == 2
    assert "--since needs --streams" in result.output


def test_tail_pubsub_shows_live_events_by_pattern(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    import threading

    stop = threading.Event()

    def publish_until_stopped() -> None:
        while not stop.wait(0.05):
            client.publish(f"{prefix}ORDERS", good_envelope("ORDERS", 5))
            client.publish(f"{prefix}ORDERS", b"{broken")
            client.publish(f"{prefix}USERS", good_envelope("USERS", 6))

    sender = threading.Thread(target=publish_until_stopped)
    sender.start()
    try:
        result = run("tail", "ORD*", "--count", "4", "--json")
    finally:
        stop.set()
        sender.join()
    events = [json.loads(line) for line in ok(result).splitlines()]
    assert {e["channel"] for e in events} == {"ORDERS"}
    good = [e for e in events if e["problem"] is None]
    bad = [e for e in events if e["problem"] is not None]
    assert good
    assert bad
    assert good[0]["payload"] == {"order_id": 5, "amount": 2.5}
    assert good[0]["event_class"] == "OrderPlaced"
    assert good[0]["source"] == "pubsub"
    assert bad[0]["problem"].startswith("invalid_json")


def test_publish_on_stream_is_what_a_stream_broker_receives(
    run: Run, client: redis.Redis, prefix: str, event_module: str
) -> None:
    receiver = RedisStreamBroker(client, channel_prefix=prefix, group="g", start="all",
                                 allowed_modules=(event_module,))  # fmt: skip
    inbox = Inbox()
    try:
        publication = EventPublication("REFUNDS", object)
        subscriber = FunctionalEventSubscriber(lambda *_: None)
        receiver.subscribe_publication(publication, subscriber)
        receiver.subscribe("REFUNDS", inbox.subscriber)
        ok(run("publish", "REFUNDS", "--class", f"{event_module}:Refund",
               "--json", '{"order_id": 1, "amount": 1}', "--stream"))  # fmt: skip
        [event] = inbox.wait_for(1)
    finally:
        receiver.close()
    assert (event.order_id, event.amount) == (1, 1.0)


def test_a_resp3_connection_reads_the_same(
    run: Run, client: redis.Redis, prefix: str
) -> None:
    key = f"{prefix}{{ORDERS}}"
    for number in range(2):
        client.xadd(key, {"event": good_envelope("ORDERS", number)})
    dead_lettered(client, prefix, "ORDERS", b"junk")
    resp3 = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}protocol=3"
    for url in (REDIS_URL, resp3):
        tailed = ok(
            run("tail", "--streams", "--since", "0", "-n", "3", "--json", url=url)
        )
        events = [json.loads(line) for line in tailed.splitlines()]
        assert [e["payload"] for e in events[:2]] == [
            {"order_id": 0, "amount": 2.5},
            {"order_id": 1, "amount": 2.5},
        ]
        letters = json.loads(
            ok(run("dead-letters", "list", "ORDERS", "--json", url=url))
        )
        assert [x["error"][:12] for x in letters["dead_letters"]] == ["invalid_json"]
        [stream] = json.loads(ok(run("streams", "--json", url=url)))["streams"]
        assert stream["length"] == 3
