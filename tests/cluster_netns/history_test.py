#!/usr/bin/env python3
"""Unit tests of the delivery-history checker (history.py): a clean history passes, and a
hand-made history that breaks each rule fails with that rule named. Runs anywhere, no root."""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from history import Recv, Sent, Session, check  # noqa: E402

failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def rules(violations):
    return sorted({v.split(":", 1)[0] for v in violations})


def clean():
    """a and b each send 3 messages; both hear all six, in order, once."""
    sent = [Sent(u, i, 10 + i + (0.5 if u == "b" else 0)) for u in "ab" for i in range(1, 4)]
    order = sorted(sent, key=lambda s: s.t)
    sessions = [Session(u, 1, 5.0, None, [Recv(s.sender, s.seq, s.t + 0.01) for s in order]) for u in "ab"]
    return sent, sessions


def main():
    sent, sessions = clean()
    expect(check(sent, sessions, [], 1.0) == [], "a clean history passes")

    # 1. delivery: b misses a:2 sent outside every window.
    sent, sessions = clean()
    sessions[1].received = [r for r in sessions[1].received if (r.sender, r.seq) != ("a", 2)]
    v = check(sent, sessions, [], 1.0)
    expect(rules(v) == ["delivery"] and "missed a:2" in v[0], "a lost message fails delivery: %s" % v)
    expect(check(sent, sessions, [(11.5, 12.5)], 1.0) == [], "... and passes when it was sent inside a fault window")
    sessions[1].ready = 12.5
    expect(check(sent, sessions, [], 1.0) == [], "... and passes when b was not ready yet when it was sent")
    sessions[1].ready, sessions[1].end = 5.0, 12.5
    sessions[1].received = [r for r in sessions[1].received if r.t <= 12.5]
    sessions[1].received = [r for r in sessions[1].received if (r.sender, r.seq) != ("a", 2)]
    expect(check(sent, sessions, [], 1.0) == [], "... and passes when b's session closed within the grace after it")
    sessions[1].end = 13.5
    expect(rules(check(sent, sessions, [], 1.0)) == ["delivery"], "... but fails when b stayed connected past the grace")

    # A reconnect is a new session: a message sent while b was away is not owed to either session.
    sent, sessions = clean()
    b1 = Session("b", 1, 5.0, 11.6, [r for r in sessions[1].received if r.t < 11.6])
    b2 = Session("b", 2, 12.2, None, [r for r in sessions[1].received if r.t > 12.2])
    expect(check(sent, [sessions[0], b1, b2], [], 0.5) == [], "a message sent between two sessions of a user is not owed")

    # 2. duplicates: within one session, and across a reconnect.
    sent, sessions = clean()
    sessions[0].received.append(Recv("b", 3, 14))
    v = check(sent, sessions, [], 1.0)
    expect("duplicate" in rules(v), "a message received twice in one session fails: %s" % v)
    sent, sessions = clean()
    again = Session("a", 2, 15.0, None, [Recv("b", 3, 15.1)])
    v = check(sent, sessions + [again], [(0, 100)], 1.0)
    expect(rules(v) == ["duplicate"], "a message received again after a reconnect fails, even inside a window: %s" % v)

    # 3. order: b hears a:3 before a:2.
    sent, sessions = clean()
    rec = sessions[1].received
    i2 = next(i for i, r in enumerate(rec) if (r.sender, r.seq) == ("a", 2))
    i3 = next(i for i, r in enumerate(rec) if (r.sender, r.seq) == ("a", 3))
    rec[i2], rec[i3] = rec[i3], rec[i2]
    v = check(sent, sessions, [], 1.0)
    expect(rules(v) == ["order"] and "a:2 after a:3" in v[0], "a sender's messages out of order fail: %s" % v)

    # 4. phantoms: never sent, and received before it was sent.
    sent, sessions = clean()
    sessions[0].received.append(Recv("c", 1, 14))
    v = check(sent, sessions, [(0, 100)], 1.0)
    expect(rules(v) == ["phantom"] and "never sent" in v[0], "a message nobody sent fails: %s" % v)
    sent, sessions = clean()
    sessions[0].received[0] = Recv("a", 1, 9.0)
    v = check(sent, sessions, [], 1.0)
    expect(rules(v) == ["phantom"] and "before it was sent" in v[0], "a message received before its send fails: %s" % v)

    # A malformed history (one seq sent twice) is an error, not a pass.
    try:
        check([Sent("a", 1, 1), Sent("a", 1, 2)], [], [], 1.0)
        expect(False, "a history with a seq sent twice raises")
    except ValueError:
        expect(True, "a history with a seq sent twice raises")

    print("%d failed" % len(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
