"""Delivery-history checker for chat load across faults (issue 11 section 5).

A history is what the clients recorded, all times on one monotonic clock:

* ``Sent(sender, seq, t)``: user ``sender`` sent its message number ``seq`` (numbered per user,
  increasing across that user's reconnects) at time ``t``.
* ``Session(user, sid, ready, end, received)``: one WebSocket of ``user``. ``ready`` is the time
  it could first receive (the client heard its own announcement); ``end`` the time it closed (``None``:
  still open when the run ended); ``received`` a list of ``Recv(sender, seq, t)`` in arrival order.

Given fault windows ``[(t0, t1), ...]`` and a ``grace`` (how long a message may take to arrive),
``check`` returns a list of violations (empty = the history passes):

1. delivery: a message sent at ``t`` outside every window reaches every session that was ready
   at or before ``t`` and stayed open until at least ``t + grace`` (a reconnect starts a new
   session, so a user that reconnected in between is not "connected throughout");
2. no duplicates: a user receives a given (sender, seq) at most once over all its sessions;
3. per-sender order: within one session, each sender's seqs arrive strictly increasing;
4. no phantoms: every received (sender, seq) was sent, and not received before it was sent.

Messages sent inside a window need not arrive, but rules 2-4 still hold for them.
"""
from collections import namedtuple

Sent = namedtuple("Sent", "sender seq t")
Recv = namedtuple("Recv", "sender seq t")


class Session:
    def __init__(self, user, sid, ready, end=None, received=None):
        self.user, self.sid, self.ready, self.end = user, sid, ready, end
        self.received = list(received or [])

    def __repr__(self):
        return "Session(%s#%s ready=%.3f end=%s n=%d)" % (
            self.user, self.sid, self.ready if self.ready is not None else -1,
            "open" if self.end is None else "%.3f" % self.end, len(self.received))


def in_window(t, windows):
    return any(t0 <= t <= t1 for t0, t1 in windows)


def check(sent, sessions, windows, grace, limit=20):
    """Violations of rules 1-4 as strings, at most `limit` per rule (plus a count line)."""
    out = {"delivery": [], "duplicate": [], "order": [], "phantom": []}
    by_key = {}
    for s in sent:
        if (s.sender, s.seq) in by_key:
            raise ValueError("history: %s sent seq %d twice" % (s.sender, s.seq))
        by_key[(s.sender, s.seq)] = s

    # 4. phantoms, 3. order (per session), 2. duplicates (per user).
    seen_by_user = {}
    for ss in sessions:
        last = {}
        seen = seen_by_user.setdefault(ss.user, set())
        for r in ss.received:
            key = (r.sender, r.seq)
            src = by_key.get(key)
            if src is None:
                out["phantom"].append("%s#%s received %s:%d, which was never sent" % (ss.user, ss.sid, r.sender, r.seq))
            elif r.t < src.t:
                out["phantom"].append("%s#%s received %s:%d at %.3f before it was sent at %.3f"
                                      % (ss.user, ss.sid, r.sender, r.seq, r.t, src.t))
            if key in seen:
                out["duplicate"].append("%s received %s:%d twice (again in session %s at %.3f)"
                                        % (ss.user, r.sender, r.seq, ss.sid, r.t))
            seen.add(key)
            if r.sender in last and r.seq <= last[r.sender]:
                out["order"].append("%s#%s received %s:%d after %s:%d" % (ss.user, ss.sid, r.sender, r.seq,
                                                                           r.sender, last[r.sender]))
            last[r.sender] = max(r.seq, last.get(r.sender, r.seq))

    # 1. delivery to every session connected throughout.
    for ss in sessions:
        if ss.ready is None:
            continue
        got = {(r.sender, r.seq) for r in ss.received}
        for s in sent:
            if in_window(s.t, windows) or s.t < ss.ready:
                continue
            if ss.end is not None and ss.end < s.t + grace:
                continue
            if (s.sender, s.seq) not in got:
                out["delivery"].append("%s#%s (ready %.3f, end %s) missed %s:%d sent at %.3f"
                                       % (ss.user, ss.sid, ss.ready, "open" if ss.end is None else "%.3f" % ss.end,
                                          s.sender, s.seq, s.t))
    result = []
    for rule, items in out.items():
        result += ["%s: %s" % (rule, v) for v in items[:limit]]
        if len(items) > limit:
            result.append("%s: ... %d more" % (rule, len(items) - limit))
    return result


def counts(sent, sessions):
    """Figures for the log: messages sent, deliveries recorded, sessions."""
    return {"sent": len(sent), "received": sum(len(s.received) for s in sessions), "sessions": len(sessions)}


def missed_by_session(sent, sessions, windows, grace):
    """Rule 1 in detail, for reports: {session: [Sent it was owed and did not get]}."""
    out = {}
    for ss in sessions:
        if ss.ready is None:
            continue
        got = {(r.sender, r.seq) for r in ss.received}
        miss = [s for s in sent if not in_window(s.t, windows) and s.t >= ss.ready and
                (ss.end is None or ss.end >= s.t + grace) and (s.sender, s.seq) not in got]
        if miss:
            out[ss] = miss
    return out
