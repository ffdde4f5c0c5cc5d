"""A python-socketio client through a burst, for the end-to-end tests.

It signs in with the token it is given, joins a channel, sends SENDS messages (each
acked with an id), and waits until it has received EXPECT messages of the channel
(its own and a burst another client sends). It prints one JSON line: the transport it
ended on, the acks, and the ids it received in order, for the test to check.

python-engineio refuses a long-polling payload of more than 16 packets and drops the
session: a burst is what shows whether the server respects that.
"""
import argparse
import json
import sys
import threading
import time
import uuid

import socketio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--channel", required=True)
    ap.add_argument("--transports", default="polling", help="polling, websocket or polling,websocket")
    ap.add_argument("--sends", type=int, default=5)
    ap.add_argument("--expect", type=int, required=True, help="messages of the channel to receive in all")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()

    received = []
    done = threading.Event()
    disconnects = []
    sio = socketio.Client(reconnection=False)

    @sio.on("message")
    def on_message(msg, offset=None):
        if isinstance(msg, dict) and msg.get("channelId") == args.channel:
            received.append(msg["id"])
            if len(received) >= args.expect:
                done.set()

    @sio.event
    def disconnect(reason=None):
        disconnects.append(str(reason))
        done.set()

    sio.connect(args.url, auth={"token": args.token}, transports=args.transports.split(","),
                wait_timeout=10)
    joined = sio.call("channel:join", {"channelId": args.channel}, timeout=10)
    if not isinstance(joined, dict) or joined.get("ok") is not True:
        print(json.dumps({"error": f"join answered {joined!r}"}))
        return 1
    # Tell the test we are in the channel: it starts the burst now.
    print(json.dumps({"ready": True}), flush=True)
    acks = []
    for i in range(args.sends):
        res = sio.call("message:send", {"channelId": args.channel, "text": f"from python {i}",
                                        "nonce": str(uuid.uuid4())}, timeout=10)
        acks.append(res)
    deadline = time.time() + args.timeout
    while not done.is_set() and time.time() < deadline:
        done.wait(0.1)
    out = {"transport": sio.transport(), "acks": acks, "received": received,
           "disconnects": list(disconnects), "connected": sio.connected}
    if sio.connected:
        sio.disconnect()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
