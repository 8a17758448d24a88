#!/usr/bin/python3
"""Yubico OTPs from an independent implementation (Debian's python3-yubiotp,
its YubiKey simulator), for the end-to-end tests.

usage: yubiotp_gen.py PUBLIC_ID_MODHEX PRIVATE_ID_HEX AES_KEY_HEX USAGE SESSION [N]
Prints N OTPs (default 1), one per line, as consecutive touches starting at
(USAGE, SESSION). yubiotp calls the non-volatile usage counter "session" and
the per-power-up session counter "counter".
"""
import sys
from binascii import unhexlify

from yubiotp.otp import YubiKey, encode_otp

public, private, key, usage, session = sys.argv[1:6]
count = int(sys.argv[6]) if len(sys.argv) > 6 else 1
key_sim = YubiKey(unhexlify(private), int(usage), int(session))
for _ in range(count):
    print(encode_otp(key_sim.generate(), unhexlify(key), public.encode()).decode())
