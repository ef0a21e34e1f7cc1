#!/usr/bin/env python3
"""Writes night-pumping/Master.csv: two days of an office PBX's honest
calls and, on the Tuesday night, extension 1001 pumping premium and
high-risk numbers abroad (and 2003, which may not call abroad, trying the
same). Deterministic (seeded). The file is in Asterisk cdr_csv order and,
like Master.csv, in order of call end. Run from this directory:
python3 gen_night_pumping.py > night-pumping/Master.csv
"""
import datetime as dt
import random

rnd = random.Random(7)
tz = dt.timezone(dt.timedelta(hours=-3))  # America/Sao_Paulo, no DST in 2026
rows = []
seq = [0]


def fmt(t):
    return t.strftime("%Y-%m-%d %H:%M:%S")


def call(ext, dialled, start, ring, talk, dst_chan="SIP/trunk"):
    seq[0] += 1
    uid = "%d.%d" % (int(start.timestamp()), seq[0])
    end = start + dt.timedelta(seconds=ring + talk)
    if talk > 0:
        answer, disp = fmt(start + dt.timedelta(seconds=ring)), "ANSWERED"
    else:
        answer, disp = "", rnd.choice(["NO ANSWER", "NO ANSWER", "BUSY"])
    chan = "SIP/%s-%08x" % (ext, seq[0])
    dchan = "%s-%08x" % (dst_chan, seq[0] + 100000)
    row = '"","%s","%s","from-internal","""Ext %s"" <%s>","%s","%s","Dial","SIP/trunk/%s,60,tT","%s","%s","%s",%d,%d,"%s","DOCUMENTATION","%s",""' % (
        ext, dialled, ext, ext, chan, dchan, dialled, fmt(start), answer, fmt(end), ring + talk, talk, disp, uid)
    rows.append((end, seq[0], row))


def br_mobile():
    return "0%d9%08d" % (rnd.choice([11, 21, 31, 41, 51]), rnd.randrange(10**8))


def br_fixed():
    return "0%d3%07d" % (rnd.choice([11, 21, 31]), rnd.randrange(10**7))


abroad = ["00012025550%03d", "000442079460%03d", "000351212345%03d", "00034912345%03d", "000541143210%03d"]

# Honest office traffic, Monday and Tuesday 09:00-18:00.
for day in (2, 3):
    for ext in ["1002", "2001", "2002", "2003", "2004", "2005"]:
        t = dt.datetime(2026, 3, day, 9, 0, tzinfo=tz) + dt.timedelta(seconds=rnd.randrange(1800))
        while t.hour < 18:
            r = rnd.random()
            if ext == "1002" and r < 0.25:
                dialled = rnd.choice(abroad) % rnd.randrange(1000)
            elif r < 0.65:
                dialled = br_mobile()
            else:
                dialled = br_fixed()
            talk = rnd.randrange(20, 600) if rnd.random() < 0.7 else 0
            call(ext, dialled, t, rnd.randrange(5, 25), talk)
            t += dt.timedelta(seconds=rnd.randrange(900, 3600))

# Honest calls a strict policy would refuse: the checks a fraud team makes.
call("2001", "000442079460555", dt.datetime(2026, 3, 2, 11, 3, 10, tzinfo=tz), 8, 312)   # a domestic extension calls London
call("1002", "000351212345999", dt.datetime(2026, 3, 2, 19, 41, 0, tzinfo=tz), 6, 95)   # after hours, to Portugal

# The attack: 1001 is compromised; from 01:02 on Tuesday it pumps premium
# and high-risk ranges, one call every 15-25 s, each answered and long.
targets = ["000881612345%03d", "000882345678%03d", "0002399012%03d", "0005351234%03d", "00037120000%03d",
           "000449098790%03d", "000442079460%03d", "00034912345%03d", "000541143210%03d", "00012025550%03d"]
t = dt.datetime(2026, 3, 3, 1, 2, 0, tzinfo=tz)
for i in range(45):
    call("1001", targets[i % len(targets)] % rnd.randrange(1000), t, rnd.randrange(3, 8), rnd.randrange(60, 300))
    t += dt.timedelta(seconds=rnd.randrange(15, 26))
# 2003 may not call abroad; the same attacker tries it too.
t = dt.datetime(2026, 3, 3, 2, 10, 0, tzinfo=tz)
for i in range(8):
    call("2003", targets[i % 3] % rnd.randrange(1000), t, rnd.randrange(3, 8), rnd.randrange(60, 300))
    t += dt.timedelta(seconds=rnd.randrange(15, 26))

rows.sort()
for _, _, row in rows:
    print(row)
