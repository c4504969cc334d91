"""Chat load for the fault tests: users that each send a numbered message every `period`
seconds, record every send and every receive (history.py), and reconnect when their socket
closes. One asyncio loop, one monotonic clock for every timestamp.

A user's message text is "<name>:<seq>"; seq counts up across the user's reconnects. A session
is ready when the user hears the echo of its own "req:connected" (a broadcast with self: the
Replica has the socket; the own join is not echoed); only ready sessions send.
"""
import asyncio, json, time

import websockets

from history import Recv, Sent, Session


class User:
    def __init__(self, load, name, first):
        self.load, self.name, self.first = load, name, first
        self.seq = 0
        self.sessions = []
        self.ws = None
        self.session = None
        self.lists = []  # user:list answers (time, sorted names)

    async def run(self):
        attempt = 0
        while not self.load.finished and attempt < 200:
            node = self.load.pick(self, attempt)
            attempt += 1
            try:
                ws = await websockets.connect(self.load.url(node, self.name), open_timeout=5, close_timeout=2,
                                              ping_interval=None, max_queue=None)
            except Exception as e:  # refused, timeout, 5xx: try the next node after a pause
                self.load.note("%s: connect to node %d failed: %s" % (self.name, node + 1, type(e).__name__))
                await asyncio.sleep(min(0.1 * attempt, 1.0))
                continue
            sess = Session(self.name, len(self.sessions) + 1, None)
            sess.node, sess.opened, sess.code = node, time.monotonic(), None
            self.sessions.append(sess)
            self.ws, self.session = ws, sess
            sender = asyncio.create_task(self._send_loop(ws, sess))
            try:
                await ws.send('{"type":"req:connected"}')
            except websockets.ConnectionClosed:
                pass
            try:
                async for raw in ws:
                    self._on_message(sess, raw, time.monotonic())
            except websockets.ConnectionClosed:
                pass
            sess.end = time.monotonic()
            sess.code = ws.close_code
            self.session = None
            sender.cancel()
            if not self.load.finished:
                self.load.note("%s#%d on node %d closed with %s" % (self.name, sess.sid, node + 1, ws.close_code))

    def _on_message(self, sess, raw, t):
        try:
            m = json.loads(raw)
        except ValueError:
            sess.received.append(Recv("<not json>", 0, t))
            return
        kind = m.get("type")
        if kind == "user:connected" and m.get("from") == self.name and sess.ready is None:
            sess.ready = t
        elif kind == "user:msg":
            sender, text = str(m.get("from")), str(m.get("text"))
            who, _, seq = text.rpartition(":")
            if who == sender and seq.isdigit():
                sess.received.append(Recv(sender, int(seq), t))
            else:  # not a message any client of this test sends: a phantom for the checker
                sess.received.append(Recv(sender + "/" + text, 0, t))
        elif kind == "user:list":
            self.lists.append((t, sorted(m.get("list", []))))

    async def _send_loop(self, ws, sess):
        period = self.load.period
        next_t = time.monotonic()
        while True:
            next_t += period
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            if sess.ready is None or not self.load.sending:
                continue
            self.seq += 1
            t = time.monotonic()
            try:
                await ws.send(json.dumps({"type": "msg", "text": "%s:%d" % (self.name, self.seq)}))
            except websockets.ConnectionClosed:
                return
            self.load.sent.append(Sent(self.name, self.seq, t))


class Load:
    """`users` users over `nodes` (host, port) front doors; user i starts on node i % n."""

    def __init__(self, nodes, users, period=0.2):
        self.nodes, self.period = nodes, period
        self.alive = set(range(len(nodes)))
        self.sent, self.notes = [], []
        self.sending, self.finished = False, False
        self.users = [User(self, "u%02d" % i, i % len(nodes)) for i in range(users)]
        self.tasks = []

    def url(self, node, name):
        host, port = self.nodes[node]
        return "ws://%s:%d/ws?u=%s" % (host, port, name)

    def pick(self, user, attempt):
        """The user's first node if alive, else alive nodes in turn from the user's index."""
        if attempt == 0 and user.first in self.alive:
            return user.first
        alive = sorted(self.alive) or list(range(len(self.nodes)))
        return alive[(user.first + attempt) % len(alive)]

    def note(self, line):
        self.notes.append("%.3f %s" % (time.monotonic(), line))

    def start(self):
        self.tasks = [asyncio.create_task(u.run()) for u in self.users]

    def all_ready(self, among=None):
        """Every user has an open, ready session (on a node in `among`, if given)."""
        return all(u.session is not None and u.session.ready is not None and
                   (among is None or u.session.node in among) for u in self.users)

    def sessions(self):
        return [s for u in self.users for s in u.sessions]

    async def stop(self):
        self.sending = False
        self.finished = True
        for u in self.users:
            if u.ws is not None:
                try:
                    await asyncio.wait_for(u.ws.close(), 5)
                except Exception:
                    pass
        await asyncio.wait(self.tasks, timeout=15)


async def wait_for(pred, timeout, step=0.1):
    """Polls `pred` until true or `timeout` seconds pass; returns its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(step)
    return pred()
