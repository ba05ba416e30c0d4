#!/usr/bin/env python3
"""Judges one testssl.sh report (`--jsonfile-pretty`) for tests/interop/testssl.sh.

Prints the protocols and cipher suites offered and every finding of severity LOW or above,
then one verdict line; exits 1 when a finding of severity LOW or above is about the
listener's TLS (protocols, GREASE, cipher lists, forward secrecy, server preferences,
session and extension defaults, vulnerabilities, ciphers per protocol), or when testssl
could not run a test (WARN, FATAL) other than the informational session resumption probes.
Findings about the test certificate, DNS, the HTTP page behind the listener and client
simulations are listed but not failed on. A report without results fails too.
"""

import json
import sys

WEAK = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# testssl's own trouble (a test it could not run) is not a pass either ...
TROUBLE = ("WARN", "FATAL")
# ... except for the session resumption probes, which are informational (no answer is
# weak) and race TLS 1.3: `openssl s_client </dev/null` may quit before the server's
# post-handshake NewSessionTicket arrives, writes no session file, and testssl reports
# "check failed because of connect problem".
INFORMATIONAL = ("sessionresumption_",)
# Sections whose findings are about the listener's TLS.
LISTENER_SECTIONS = ("protocols", "grease", "ciphers", "pfs", "serverPreferences",
                     "serverDefaults", "vulnerabilities", "cipherTests")
# ... except these serverDefaults entries, which are about the certificate or DNS.
CERTIFICATE_IDS = ("cert", "intermediate", "OCSP_stapling", "DNS_CAArecord",
                   "certificate_transparency")
PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")


def about_listener(section, finding):
    if section not in LISTENER_SECTIONS:
        return False
    return not (section == "serverDefaults" and finding["id"].startswith(CERTIFICATE_IDS))


def main(path):
    try:
        report = json.load(open(path))
        result = report["scanResult"][0]
    except (OSError, ValueError, KeyError, IndexError) as error:
        print(f"  no usable report: {error}")
        print("FAIL: no report")
        return 1
    sections = {name: entries for name, entries in result.items() if isinstance(entries, list)}
    by_id = {f["id"]: f for entries in sections.values() for f in entries}

    offered = [p for p in PROTOCOLS if by_id.get(p, {}).get("finding", "").startswith("offered")]
    print(f"  protocols offered: {' '.join(offered) or 'none'}")
    for ident in ("cipher_order", "cipherorder_TLSv1_2", "cipherorder_TLSv1_3",
                  "PFS_ECDHE_curves", "ALPN_HTTP2", "ALPN", "TLS_session_ticket",
                  "sessionresumption_ID"):
        if ident in by_id:
            print(f"  {ident:20} {by_id[ident]['finding']}")

    bad, listed = [], []
    for section, entries in sections.items():
        for f in entries:
            severity = f.get("severity")
            if severity in WEAK:
                (bad if about_listener(section, f) else listed).append((section, f))
            elif severity in TROUBLE:
                (listed if f["id"].startswith(INFORMATIONAL) else bad).append((section, f))
    for section, f in bad:
        print(f"  {f['severity']:8} {section}/{f['id']}: {f['finding']}")
    for section, f in listed:
        why = "informational" if f["severity"] in TROUBLE else "not about the listener"
        print(f"  {f['severity']:8} {section}/{f['id']}: {f['finding']} ({why})")
    if not offered:
        print("FAIL: no protocol offered (did the scan connect?)")
        return 1
    if bad:
        print(f"FAIL: {len(bad)} listener finding(s) of severity LOW or above, or test(s) "
              f"testssl could not run [{' '.join(offered)}]")
        return 1
    print(f"ok: no listener finding of severity LOW or above [{' '.join(offered)}; "
          f"{len(listed)} other finding(s) listed]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
