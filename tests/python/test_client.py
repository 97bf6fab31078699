#!/usr/bin/env python3
"""A Python Socket.io client talks to Nexus Chat: register, log in, connect, chat.

Usage: python3 tests/python/test_client.py <base_url>

Each check builds its own users. Exits non-zero when a check fails; the last line is
"N passed, N failed".
"""

import queue
import secrets
import sys
import time
import traceback

import requests
import socketio

TIMEOUT = 10


def new_name(prefix):
    return f"{prefix}_{secrets.token_hex(5)}"


def register_and_login(base, name, password="correct horse battery"):
    reg = requests.post(f"{base}/auth/register", json={"username": name, "password": password}, timeout=TIMEOUT)
    assert reg.status_code == 201, f"register answered {reg.status_code}: {reg.text}"
    user = reg.json()
    assert set(user) == {"id", "username", "status", "createdAt"}, f"register body {user}"
    res = requests.post(f"{base}/auth/login", json={"username": name, "password": password}, timeout=TIMEOUT)
    assert res.status_code == 201, f"login answered {res.status_code}: {res.text}"
    body = res.json()
    assert body["user"] == {"id": user["id"], "username": name}, f"login body {body}"
    return user, body["access_token"]


class Client:
    """A connected python-socketio client that queues every message:new and presence event."""

    def __init__(self, base, token, transports=("websocket",)):
        self.inbox = queue.Queue()
        self.rooms = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("message:new", self.inbox.put)
        self.sio.on("room:message", self.rooms.put)
        self.sio.connect(base, auth={"token": token}, transports=list(transports), wait_timeout=TIMEOUT)

    def call(self, event, payload):
        # A tuple is sent as the argument list, so (None,) emits an explicit null like the React client.
        return self.sio.call(event, (payload,), timeout=TIMEOUT)

    def next_message(self):
        return self.inbox.get(timeout=TIMEOUT)

    def close(self):
        self.sio.disconnect()


def chat_between_two_users(base, transports):
    alice, alice_token = register_and_login(base, new_name("py_alice"))
    bob, bob_token = register_and_login(base, new_name("py_bob"))
    a = Client(base, alice_token, transports)
    b = Client(base, bob_token, transports)
    try:
        users = a.call("user:init", None)
        assert isinstance(users, list), f"user:init ack {users!r}"
        ids = [u["id"] for u in users]
        assert alice["id"] in ids and bob["id"] in ids, f"user:init lists both users: {users}"
        me = next(u for u in users if u["id"] == alice["id"])
        assert me["status"] == "online" and me["username"] == alice["username"], me

        ack = a.call("message:send", {"receiverId": bob["id"], "content": "hello from python"})
        assert not (isinstance(ack, dict) and ack.get("error")), f"send failed: {ack}"
        assert set(ack) == {"id", "content", "senderId", "receiverId", "createdAt"}, f"ack {ack}"
        assert ack["senderId"] == alice["id"] and ack["receiverId"] == bob["id"], ack

        expected = dict(ack, senderUsername=alice["username"])
        assert b.next_message() == expected, "the receiver gets the stored message"
        assert a.next_message() == expected, "the sender's socket gets it too"

        reply = b.call("message:send", {"receiverId": alice["id"], "content": "hi back"})
        got = a.next_message()
        assert got["id"] == reply["id"] and got["senderUsername"] == bob["username"], got

        history = a.call("message:history", {"receiverId": bob["id"]})
        assert [m["id"] for m in history] == [ack["id"], reply["id"]], f"history {history}"
    finally:
        a.close()
        b.close()


def test_two_users_chat_over_websocket(base):
    chat_between_two_users(base, ("websocket",))


def test_two_users_chat_over_polling_with_upgrade(base):
    chat_between_two_users(base, ("polling", "websocket"))


def test_a_socket_without_a_token_is_refused(base):
    sio = socketio.Client(reconnection=False)
    reasons = []
    sio.on("connect_error", reasons.append)
    try:
        sio.connect(base, transports=["websocket"], wait_timeout=TIMEOUT)
    except socketio.exceptions.ConnectionError:
        message = reasons[0].get("message") if reasons and isinstance(reasons[0], dict) else reasons
        assert message == "Unauthorized", f"connect_error carried {reasons!r}"
        return
    finally:
        if sio.connected:
            sio.disconnect()
    raise AssertionError("the server accepted a socket without a token")


def test_an_errored_send_acks_an_error_code(base):
    alice, token = register_and_login(base, new_name("py_err"))
    a = Client(base, token)
    try:
        ack = a.call("message:send", {"receiverId": alice["id"], "content": "   "})
        assert isinstance(ack, dict) and ack.get("error", {}).get("code") == "invalid_payload", ack
    finally:
        a.close()


def test_a_group_room_creates_sends_receives_and_pages_history(base):
    alice, alice_token = register_and_login(base, new_name("py_owner"))
    bob, bob_token = register_and_login(base, new_name("py_member"))
    a = Client(base, alice_token)
    b = Client(base, bob_token)
    try:
        room = a.call("room:create", {"name": "python group", "memberIds": [bob["id"]]})
        assert not room.get("error"), f"room:create failed: {room}"
        assert room["ownerId"] == alice["id"] and room["name"] == "python group", room
        assert {m["id"] for m in room["members"]} == {alice["id"], bob["id"]}, room

        sent = []
        for i in range(12):
            ack = b.call("room:send", {"roomId": room["id"], "content": f"py {i}"})
            assert set(ack) == {"id", "content", "senderId", "roomId", "createdAt"}, f"ack {ack}"
            sent.append(ack)
        got = [a.rooms.get(timeout=TIMEOUT) for _ in sent]
        assert [m["id"] for m in got] == [m["id"] for m in sent], "alice hears each message in order"
        assert got[0] == dict(sent[0], senderUsername=bob["username"]), got[0]
        assert a.inbox.empty(), "room traffic is never a message:new"

        latest = a.call("room:history", {"roomId": room["id"], "limit": 5})
        assert [m["id"] for m in latest] == [m["id"] for m in sent[-5:]], latest
        older = a.call("room:history", {"roomId": room["id"], "before": latest[0]["id"], "limit": 100})
        assert [m["id"] for m in older + latest] == [m["id"] for m in sent], older

        page = requests.get(
            f"{base}/api/rooms/{room['id']}/messages?limit=4",
            headers={"Authorization": f"Bearer {alice_token}"},
            timeout=TIMEOUT,
        ).json()
        assert page["hasMore"] is True and [m["id"] for m in page["messages"]] == [m["id"] for m in sent[-4:]], page
    finally:
        a.close()
        b.close()


TESTS = [
    test_two_users_chat_over_websocket,
    test_two_users_chat_over_polling_with_upgrade,
    test_a_socket_without_a_token_is_refused,
    test_an_errored_send_acks_an_error_code,
    test_a_group_room_creates_sends_receives_and_pages_history,
]


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} <base_url>", file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")
    passed = failed = 0
    for test in TESTS:
        started = time.monotonic()
        try:
            test(base)
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            failed += 1
            print(f"FAIL {test.__name__} ({time.monotonic() - started:.2f}s)")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {test.__name__} ({time.monotonic() - started:.2f}s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
