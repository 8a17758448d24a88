"""privacyIDEA beside otpgate in scripts/bench-fleet.sh: enrolls a TOTP
token (the bench users' secret) for each user through privacyIDEA's own
API, then times /validate/check with right codes at 1, 8 and 64 concurrent
requests, and races 32 requests carrying one right code.

A TOTP token refuses a time step it has used, and accepts steps within its
window (180 s: 6 steps either way), so each user logs in with the codes of
successive steps: level 1 (user 0) and level 8 (users 1-8) the six steps
before now, level 64 (users 0-63) now and the five after; the race uses the
step after those.

usage: python3 bench-privacyidea.py URL USER_PREFIX ADMIN PASSWORD
"""

import base64
import hashlib
import hmac
import json
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request

SECRET = base64.b32decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")


def totp(step):
    mac = hmac.new(SECRET, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)


def post(url, path, data, token=None):
    req = urllib.request.Request(url + path, data=urllib.parse.urlencode(data).encode())
    if token:
        req.add_header("Authorization", token)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def check(url, user, code):
    t0 = time.perf_counter()
    try:
        body = post(url, "/validate/check", {"user": user, "pass": code})
        ok = bool(body.get("result", {}).get("value"))
    except Exception:  # an error is a refusal, timed all the same
        ok = False
    return ok, (time.perf_counter() - t0) * 1000.0


def level(url, jobs):
    """jobs: per thread, a list of (user, code); returns (results, wall)."""
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(len(jobs))

    def run(mine):
        barrier.wait()
        for user, code in mine:
            r = check(url, user, code)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def main():
    url, prefix, admin, password = sys.argv[1:5]
    token = post(url, "/auth", {"username": admin, "password": password})["result"]["value"]["token"]
    for i in range(64):
        post(url, "/token/init", {"type": "totp", "otpkey": SECRET.hex(), "genkey": 0,
                                   "user": f"{prefix}{i}", "realm": "users"}, token)
    now = int(time.time()) // 30
    before = [now - 6 + k for k in range(6)]
    after = [now + k for k in range(6)]
    plans = {
        1: [[(f"{prefix}0", totp(s)) for s in before]],
        8: [[(f"{prefix}{1 + t}", totp(s)) for s in before] for t in range(8)],
        64: [[(f"{prefix}{t}", totp(s)) for s in after] for t in range(64)],
    }
    for concurrency, jobs in plans.items():
        results, wall = level(url, jobs)
        lat = sorted(ms for _, ms in results)
        pct = lambda p: lat[min(int(len(lat) * p), len(lat) - 1)]
        accepted = sum(1 for ok, _ in results if ok)
        print(f"privacyidea-bench concurrency={concurrency:<2} logins={len(results):<5} accepted={accepted:<5} "
              f"logins_per_s={len(results) / wall:<7.0f} p50_ms={pct(0.5):.2f} p99_ms={pct(0.99):.2f} "
              f"p99_over_p50={pct(0.99) / pct(0.5):.1f}", flush=True)
    code = totp(now + 6)
    results, _ = level(url, [[(f"{prefix}63", code)] for _ in range(32)])
    print(f"privacyidea-race requests=32 one_right_code accepted={sum(1 for ok, _ in results if ok)}", flush=True)


if __name__ == "__main__":
    main()
