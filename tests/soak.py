"""Soak run (not part of the test suite): a QoS 1 and a QoS 2 stream through a proxy that is
cut or blackholed at random moments, for as long as asked; then every message is accounted
for. Run it with scripts/soak.sh [minutes]."""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import cprog  # noqa: E402
from harness.background import Background  # noqa: E402
from harness.broker import Broker  # noqa: E402
from harness.proxy import TcpProxy  # noqa: E402


def numbers(line: str) -> dict[str, int]:
    pairs = (kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    return {k: int(v) for k, v in pairs if v.lstrip("-").isdigit()}


def main(minutes: float) -> int:
    cprog.build_library()
    exe = cprog.compile_c([cprog.repo_root() / "tests/c/eq1stream.c"])
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="eq1-soak-"))
    failures = 0
    with Broker(workdir=work / "broker") as broker, \
            TcpProxy(broker.host, broker.port) as proxy:
        streams = {}
        for qos in (1, 2):
            s = Background([exe, "--brokers", f"127.0.0.1:{proxy.port}", "--qos", qos,
                            "--persistent", "--keepalive", 2, "--reconnect-min", 50,
                            "--reconnect-max", 1000, "--id", f"soak-q{qos}",
                            "--topic", f"soak/{qos}"], stdin=True)
            s.wait_for_line("READY", timeout=30)
            streams[qos] = s
        end = time.monotonic() + minutes * 60
        cuts = blackholes = rounds = 0
        while time.monotonic() < end:
            marks = {qos: s.mark() for qos, s in streams.items()}
            for s in streams.values():
                s.send("publish 2000 400")
            time.sleep(rng.uniform(0.2, 1.0))
            if rng.random() < 0.8:
                proxy.cut()
                cuts += 1
            else:
                proxy.blackhole(True)
                time.sleep(rng.uniform(0.5, 3.0))
                proxy.blackhole(False)
                proxy.cut()
                blackholes += 1
            for qos, s in streams.items():
                s.wait_for_line("PUBLISHED", timeout=300, since=marks[qos])
            rounds += 1
            print(f"round {rounds}: {cuts} cuts, {blackholes} blackholes", flush=True)
        for qos, s in streams.items():
            delivered = numbers(s.ask("wait_delivered 120000", "DELIVERED", 180))
            total = delivered["accepted"]
            received = numbers(s.ask(f"wait_received {total} 120000 10000", "RECEIVED", 180))
            stats = numbers(s.ask("stats", "STATS role=pub"))
            ok = (delivered["ok"] == total and received["missing"] == 0
                  and (qos == 1 or received["duplicates"] == 0))
            failures += not ok
            print(f"QoS {qos}: {total} published, {delivered['ok']} delivered, "
                  f"{delivered['failed']} failed, {received['missing']} missing, "
                  f"{received['duplicates']} duplicates, {stats['reconnects']} reconnects "
                  f"-> {'OK' if ok else 'FAILED'}", flush=True)
            s.send("quit")
            s.wait(30)
        print(f"{cuts} cuts and {blackholes} blackholes in {minutes} minutes", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))
