#!/usr/bin/env python3
"""Writes N Asterisk Master.csv records (default 200000) to stdout: 100
extensions calling Brazilian mobiles every 7 s from 2026-03-02 08:00, each
answered after 5 s and lasting 95 s. For load figures (docs/BENCHMARKS.md):

    python3 internal/cdr/testdata/gen_master.py 200000 > /tmp/big_master.csv
"""
import datetime as dt
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
start = dt.datetime(2026, 3, 2, 8, 0, 0)
F = "%Y-%m-%d %H:%M:%S"
w = sys.stdout.write
for i in range(n):
    s = start + dt.timedelta(seconds=7 * i)
    a, e = s + dt.timedelta(seconds=5), s + dt.timedelta(seconds=95)
    ext = "10%02d" % (i % 100)
    num = "0119876%05d" % (i % 100000)
    w('"","%s","%s","from-internal","""Ext %s"" <%s>","SIP/%s-%08x","SIP/trunk-%08x","Dial","SIP/trunk/%s,60,tT","%s","%s","%s",95,90,"ANSWERED","DOCUMENTATION","%d.%d",""\n'
      % (ext, num, ext, ext, ext, i, i + 1, num, s.strftime(F), a.strftime(F), e.strftime(F), int(s.timestamp()), i))
