"""Store and forward through the client API, against a real mosquitto: a publisher process
(tests/c/eq1persistpub.c) SIGKILLed at random moments and started again on the same store
loses nothing it accepted (QoS 1 at least once, QoS 2 exactly once), also when the broker
forgets the session during an outage; a full disk, a disk failing with I/O errors and a file
system turned read-only under the open store each give publish its status and lose nothing
stored (real ext4 on loop devices, harness/disks.py); a second process on the same store is
refused while the first goes on."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import cprog
from harness.disks import FailingDisk

REPO = Path(__file__).resolve().parents[1]
PUBLISHER = REPO / "tests" / "c" / "eq1persistpub.c"
N_QOS1 = 20_000
N_QOS2 = 20_000
KILLS = 10
LOG_TYPES = tuple(os.environ.get("EQ1_CRASH_BROKER_LOG", "error,warning").split(","))


@pytest.fixture
def publisher(built_library):
    return cprog.compile_c([PUBLISHER])


@pytest.fixture
def mqtt(built_library):
    """make(broker, **MQTTConfig fields) -> connected MQTTProtocol; closed at teardown."""
    os.environ["EQ1_LIBRARY"] = str(Path(built_library) / "libeq1.so")
    bindings = str(REPO / "bindings" / "python")
    if bindings not in sys.path:
        sys.path.insert(0, bindings)
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    made = []

    def make(broker, connect=True, **fields):
        fields.setdefault("reconnect_min_delay", 0.05)
        fields.setdefault("reconnect_max_delay", 0.5)
        client = MQTTProtocol(MQTTConfig(broker_address=broker.host, port=broker.port,
                                         timeout=10, **fields))
        made.append(client)
        if connect:
            client.connect()
        return client

    yield make
    for client in made:
        client.close()


class Counter:
    """Counts arrivals per sequence number on crash/<qos>/<seq>, and marker messages."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.counts: dict[int, int] = {}
        self.markers: set[str] = set()
        self.last_arrival = time.monotonic()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.cond:
            self.last_arrival = time.monotonic()
            if topic.startswith("marker/"):
                self.markers.add(topic)
            else:
                seq = int(topic.rsplit("/", 1)[1])
                self.counts[seq] = self.counts.get(seq, 0) + 1
            self.cond.notify_all()

    def wait_for(self, wanted: set[int], timeout: float) -> set[int]:
        """Waits until every number in `wanted` arrived; returns those still missing."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                missing = {s for s in wanted if s not in self.counts}
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self.cond.wait(min(left, 0.5))

    def wait_marker(self, name: str, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while name not in self.markers:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def wait_quiet(self, quiet: float, timeout: float = 30.0) -> None:
        """Until nothing arrived for `quiet` seconds (the broker delivered what it had)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cond:
                if time.monotonic() - self.last_arrival >= quiet:
                    return
            time.sleep(quiet / 4)


def accepted_in(path: Path) -> tuple[set[int], list[str]]:
    """The sequence numbers a run printed (complete lines only: a kill may cut the last)."""
    text = path.read_text() if path.exists() else ""
    lines = text.split("\n")[:-1]
    numbers = {int(line) for line in lines if line.isdigit()}
    return numbers, [line for line in lines if not line.isdigit()]


def last_printed(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read().split(b"\n")[:-1]
    except FileNotFoundError:
        return -1
    for line in reversed(tail):
        if line.isdigit():
            return int(line)
    return -1


def run_crashing_publisher(publisher, broker, store: Path, out_dir: Path, seed: int,
                           outage=None) -> tuple[set[int], list[str]]:
    """Starts the publisher KILLS times, each SIGKILLed once it printed past a random
    sequence number, then once more to the end. `outage(run)` runs while it is dead.
    Returns every accepted number and the other lines the runs printed."""
    rng = random.Random(seed)
    targets = sorted(rng.sample(range(500, N_QOS1 + N_QOS2 - 500), KILLS))
    accepted: set[int] = set()
    notes: list[str] = []
    for run, target in enumerate(targets + [None]):
        first = max(accepted) + 1 if accepted else 0
        out = out_dir / f"run{run}.out"
        args = [str(publisher), broker.host, str(broker.port), str(store), "batched",
                str(N_QOS1), str(N_QOS2), str(first)]
        with open(out, "wb") as sink:
            proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
        try:
            if target is None:
                proc.wait(timeout=90)
            else:
                deadline = time.monotonic() + 60
                while last_printed(out) < target and proc.poll() is None and \
                        time.monotonic() < deadline:
                    time.sleep(0.002)
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        numbers, other = accepted_in(out)
        accepted |= numbers
        notes += [f"run {run}: {line}" for line in other]
        errors = [line for line in other if line.startswith("ERROR")]
        assert not errors, f"run {run} (killed past {target}): {errors}"
        if target is None:
            assert proc.returncode == 0 and "DONE" in other, \
                f"final run ended {proc.returncode}: {other[-5:]}"
        elif outage is not None:
            outage(run)
    return accepted, notes


def ranges(numbers: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def persistent_subscriber(mqtt, broker, counter: Counter):
    sub = mqtt(broker, client_id="eq1-crash-sub", clean_session=False)
    sub.subscribe("crash/#", counter, qos=2)
    sub.subscribe("marker/#", counter, qos=1)
    return sub


def check_counts(counter: Counter, accepted: set[int], allowed_qos2_duplicates: int = 0):
    missing = counter.wait_for(accepted, timeout=60)
    assert not missing, (f"{len(missing)} accepted messages never arrived: "
                         f"{ranges(sorted(missing))[:20]}")
    with counter.cond:
        counts = dict(counter.counts)
    duplicated = sorted(s for s, n in counts.items() if s >= N_QOS1 and n > 1)
    assert len(duplicated) <= allowed_qos2_duplicates, \
        f"{len(duplicated)} QoS 2 messages arrived more than once, e.g. {duplicated[:10]}"
    # Nothing arrives that was never published.
    assert all(0 <= s < N_QOS1 + N_QOS2 for s in counts)
    return counts


@pytest.mark.timeout(180)
def test_sigkilled_publisher_loses_nothing_it_accepted(publisher, broker_factory, mqtt,
                                                       tmp_path):
    broker = broker_factory(log_types=LOG_TYPES)
    counter = Counter()
    persistent_subscriber(mqtt, broker, counter)
    seed = int(os.environ.get("EQ1_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash seed: {seed} (EQ1_CRASH_SEED reproduces it)")
    accepted, notes = run_crashing_publisher(publisher, broker, tmp_path / "store", tmp_path,
                                             seed)
    restored = [n for n in notes if n.split(": ", 1)[1].startswith("RESTORED ")]
    assert any(not n.endswith("RESTORED 0") for n in restored), \
        f"no run restored anything, the kills found nothing in the store: {restored}"
    counts = check_counts(counter, accepted)
    assert all(counts[s] == 1 for s in accepted if s >= N_QOS1), "QoS 2: exactly once"
    # A number a killed run stored but never printed came back from the store: the next run
    # started after it, and it arrived all the same.
    assert set(counts) == set(range(N_QOS1 + N_QOS2)), "every number arrived"


@pytest.mark.timeout(180)
def test_sigkilled_publisher_loses_nothing_when_the_broker_forgets_the_session(
        publisher, broker_factory, mqtt, tmp_path):
    # No broker persistence: a restart forgets every session (the publisher's too).
    broker = broker_factory(log_types=LOG_TYPES)
    counter = Counter()
    sub = persistent_subscriber(mqtt, broker, counter)
    seed = int(os.environ.get("EQ1_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash seed: {seed} (EQ1_CRASH_SEED reproduces it)")
    restart_after = random.Random(seed).randrange(2, KILLS - 2)
    restarted = []

    def outage(run: int) -> None:
        if run != restart_after:
            return
        # What the broker acknowledged reached the subscriber before it goes: a broker
        # without persistence loses what it still held, and that is not the client's loss.
        counter.wait_quiet(1.0)
        broker.restart()
        # The subscriber reconnects (session gone) and subscribes again by itself.
        deadline = time.monotonic() + 30
        n = 0
        while time.monotonic() < deadline:
            n += 1
            marker = f"marker/{n}"
            try:
                sub.publish(marker, b"m", qos=1)
            except Exception:
                time.sleep(0.1)
                continue
            if counter.wait_marker(marker, timeout=1.0):
                restarted.append(run)
                return
        raise AssertionError("the subscriber did not come back after the broker restart")

    accepted, _ = run_crashing_publisher(publisher, broker, tmp_path / "store", tmp_path,
                                         seed, outage)
    assert restarted == [restart_after]
    # QoS 2 when the broker forgot the session (docs/persistence.md): what was in flight is
    # sent again as new messages; one whose PUBREL had reached the broker before the kill
    # may arrive twice. At most the inflight window (20) of them.
    counts = check_counts(counter, accepted, allowed_qos2_duplicates=20)
    assert set(counts) == set(range(N_QOS1 + N_QOS2)), "every number arrived"


@pytest.mark.timeout(120)
def test_a_second_process_on_the_store_gets_its_status_and_the_first_goes_on(
        publisher, broker, mqtt, tmp_path):
    from communicator.common.exceptions import ProtocolError, Status

    counter = Counter()
    persistent_subscriber(mqtt, broker, counter)
    store = tmp_path / "store"
    total = 3000
    args = [str(publisher), broker.host, str(broker.port), str(store), "batched", str(total),
            "0", "0", "0", "300"]
    first_out = tmp_path / "first.out"
    with open(first_out, "wb") as sink:
        first = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while last_printed(first_out) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert second.returncode == 3, second.stdout + second.stderr
        assert "ERROR client_new EQ1_STATUS_STORE_LOCKED" in second.stdout, second.stdout
        # The same refusal through the Python binding, in this process.
        with pytest.raises(ProtocolError) as refused:
            mqtt(broker, connect=False, client_id="eq1-crash-pub", clean_session=False,
                 persistence_dir=store, durability="sync")
        assert refused.value.status == Status.STORE_LOCKED, refused.value
        assert first.poll() is None, "the first process was still publishing meanwhile"
        during = last_printed(first_out)
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    numbers, other = accepted_in(first_out)
    assert "DONE" in other and numbers == set(range(total)), other
    assert during < total - 1, "the first went on publishing after the second was refused"
    missing = counter.wait_for(numbers, timeout=30)
    assert not missing, ranges(sorted(missing))[:10]
    # Once the first is gone the store opens again, for its own client id only.
    with pytest.raises(ProtocolError) as mismatch:
        mqtt(broker, connect=False, client_id="someone-else", persistence_dir=store)
    assert mismatch.value.status == Status.STORE_CLIENT_MISMATCH, mismatch.value
    again = mqtt(broker, connect=False, client_id="eq1-crash-pub", clean_session=False,
                 persistence_dir=store)
    assert again.restored_messages() == [], "a finished run leaves nothing to restore"


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs made for the test (CI runs as root: a failed mount fails the test)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a small tmpfs (the test needs root): {r.stderr}"
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def fill(directory: Path) -> Path:
    """Writes a file until the file system is full."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    return filler


@pytest.mark.timeout(120)
@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_a_full_disk_fails_publish_with_its_status_and_loses_nothing_stored(
        broker, mqtt, small_disk, durability):
    from communicator.common.exceptions import ProtocolError, Status

    store = small_disk / "store"
    config = dict(client_id=f"eq1-disk-pub-{durability}", clean_session=False,
                  persistence_dir=store, durability=durability, queue_before_connect=True)
    # Not connected: everything accepted stays in the store.
    pub = mqtt(broker, connect=False, **config)
    payload = b"x" * 1000
    accepted = []
    for seq in range(200):
        accepted.append(pub.publish_async(f"disk/1/{seq}", payload, qos=1))
    filler = fill(small_disk)
    refused = None
    for seq in range(200, 20_000):
        try:
            accepted.append(pub.publish_async(f"disk/1/{seq}", payload, qos=1))
        except ProtocolError as e:
            refused = e
            break
    assert refused is not None, "the full disk never refused a publish"
    assert refused.status == Status.STORE_FULL, refused
    assert "space" in refused.detail, refused.detail
    # Still refused while full, and never hanging.
    with pytest.raises(ProtocolError) as again:
        pub.publish_async("disk/1/x", payload, qos=1)
    assert again.value.status == Status.STORE_FULL
    # Space comes back: publishing works again.
    filler.unlink()
    for seq in range(len(accepted), len(accepted) + 100):
        accepted.append(pub.publish_async(f"disk/1/{seq}", payload, qos=1))
    count = len(accepted)
    pub.close()
    # Nothing stored was lost: a new client on the store has every accepted message, in order,
    # and delivers them once connected.
    counter = Counter()
    persistent_subscriber_on = mqtt(broker, client_id=f"eq1-disk-sub-{durability}",
                                    clean_session=False)
    persistent_subscriber_on.subscribe("disk/#", counter, qos=1)
    pub = mqtt(broker, connect=False, **config)
    restored = pub.restored_messages()
    assert [topic for _, topic, _ in restored] == [f"disk/1/{s}" for s in range(count)]
    assert [token for token, _, _ in restored] == accepted, "each keeps its token"
    pub.connect()
    missing = counter.wait_for(set(range(count)), timeout=30)
    assert not missing, ranges(sorted(missing))[:10]
    for token in accepted:
        assert pub.wait(token, timeout=10)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["reject_new", "drop_oldest"])
def test_a_store_at_its_size_limit_follows_the_queue_policy(broker, mqtt, tmp_path, policy):
    from communicator.common.exceptions import ProtocolError, Status

    counter = Counter()
    sub = mqtt(broker, client_id=f"eq1-limit-sub-{policy}", clean_session=False)
    sub.subscribe("limit/#", counter, qos=1)
    pub = mqtt(broker, connect=False, client_id=f"eq1-limit-pub-{policy}", clean_session=False,
               persistence_dir=tmp_path / "store", persistence_max_bytes=65_536,
               queue_policy=policy, queue_before_connect=True)
    payload = b"x" * 1000
    tokens: dict[int, int] = {}
    refused = 0
    for seq in range(150):
        try:
            tokens[seq] = pub.publish_async(f"limit/1/{seq}", payload, qos=1)
        except ProtocolError as e:
            assert e.status == Status.STORE_FULL, e
            refused += 1
    pub.connect()
    delivered, dropped = set(), set()
    for seq, token in tokens.items():
        try:
            assert pub.wait(token, timeout=20)
            delivered.add(seq)
        except ProtocolError as e:
            assert e.status == Status.DROPPED, e
            dropped.add(seq)
    if policy == "reject_new":
        assert refused > 0 and not dropped, (refused, len(dropped))
        assert delivered == set(range(len(delivered))), "the oldest were kept"
    else:
        assert refused == 0 and dropped, "drop_oldest never refuses while something is queued"
        assert max(dropped) < min(delivered), "the oldest were dropped, the newest kept"
        assert 149 in delivered
    missing = counter.wait_for(delivered, timeout=30)
    assert not missing, ranges(sorted(missing))[:10]
    with counter.cond:
        assert not dropped & set(counter.counts), "a dropped message was still sent"


@pytest.fixture
def failing_disk(tmp_path):
    """ext4 on a loop device that the test can make fail (harness/disks.py; root needed)."""
    disk = FailingDisk(tmp_path / "faulty")
    try:
        disk.start()
    except RuntimeError as e:
        disk.close()
        pytest.fail(str(e))
    try:
        yield disk
    finally:
        disk.close()


def publish_before_the_fault(pub, prefix: str, count: int) -> list[int]:
    return [pub.publish_async(f"{prefix}/{seq}", b"x" * 200, qos=1) for seq in range(count)]


def publish_until_refused(pub, prefix: str, first: int, tries: int = 200):
    """Publishes (pausing 20 ms between tries, so a batched store's background sync runs)
    until one is refused; returns the tokens accepted meanwhile and the refusal."""
    from communicator.common.exceptions import ProtocolError

    accepted = []
    for seq in range(first, first + tries):
        try:
            accepted.append(pub.publish_async(f"{prefix}/{seq}", b"x" * 200, qos=1))
        except ProtocolError as e:
            return accepted, e
        time.sleep(0.02)
    raise AssertionError(f"{tries} publishes on the failed disk were all accepted")


def reopen_and_deliver(mqtt, broker, config, sub_id: str, prefix: str, wanted: set[int]):
    """A new client on the repaired store: returns the sequence numbers it restored, after
    checking that every one of `wanted` is among them and reaches a subscriber."""
    counter = Counter()
    sub = mqtt(broker, client_id=sub_id, clean_session=False)
    sub.subscribe(f"{prefix}/#", counter, qos=1)
    pub = mqtt(broker, connect=False, **config)
    restored = {int(topic.rsplit("/", 1)[1]) for _, topic, _ in pub.restored_messages()}
    assert wanted <= restored, f"lost from the store: {ranges(sorted(wanted - restored))}"
    pub.connect()
    missing = counter.wait_for(restored, timeout=30)
    assert not missing, ranges(sorted(missing))[:10]
    return restored


@pytest.mark.timeout(180)
@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_a_disk_failing_with_io_errors_fails_publish_and_loses_nothing_stored(
        broker, mqtt, failing_disk, durability):
    from communicator.common.exceptions import ProtocolError, Status

    prefix = f"eio/{durability}"
    config = dict(client_id=f"eq1-eio-pub-{durability}", clean_session=False,
                  persistence_dir=failing_disk.mountpoint / "store", durability=durability,
                  persistence_interval=0.05, queue_before_connect=True)
    pub = mqtt(broker, connect=False, **config)
    before = publish_before_the_fault(pub, prefix, 100)
    if durability == "batched":
        # On disk once the background sync ran (forced here so the test does not wait on it).
        failing_disk.sync()
    failing_disk.fail_io()
    after, refused = publish_until_refused(pub, prefix, len(before))
    if durability == "sync":
        # The first publish after the fault: its record reached the page cache, its fdatasync
        # failed with EIO, and publish says so.
        assert not after, "sync mode accepted a publish it could not make durable"
        assert refused.status == Status.STORE_IO, refused
        assert "Input/output error" in refused.detail, refused.detail
    else:
        # Publishes written to the kernel return until the background sync meets the error:
        # EIO (STORE_IO), or EROFS if ext4 noticed first and remounted read-only.
        assert refused.status in (Status.STORE_IO, Status.STORE_READ_ONLY), refused
    # Refused from then on, at once, not hanging.
    for seq in range(3):
        with pytest.raises(ProtocolError) as again:
            pub.publish_async(f"{prefix}/refused/{seq}", b"x", qos=1)
        assert again.value.status in (Status.STORE_IO, Status.STORE_READ_ONLY), again.value
    # Nothing accepted is lost while the process lives, the disk still failing: the client
    # holds every accepted message and delivers it (also those the batched mode accepted
    # after the fault, which never reached the disk).
    counter = Counter()
    sub = mqtt(broker, client_id=f"eq1-eio-sub-{durability}", clean_session=False)
    sub.subscribe(f"{prefix}/#", counter, qos=1)
    pub.connect()
    accepted = before + after
    for token in accepted:
        assert pub.wait(token, timeout=20)
    missing = counter.wait_for(set(range(len(accepted))), timeout=30)
    assert not missing, ranges(sorted(missing))[:10]
    pub.close()
    sub.close()
    # The disk is repaired: everything stored before the fault is still there, and a new
    # client delivers it (again: the failed disk could not take their removals; QoS 1 allows
    # the repeat). Nothing refused and nothing never published comes back.
    failing_disk.repair()
    restored = reopen_and_deliver(mqtt, broker, config, f"eq1-eio-sub2-{durability}", prefix,
                                  set(range(len(before))))
    assert restored <= set(range(len(accepted))), sorted(restored)[-5:]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_a_file_system_turned_read_only_fails_publish_and_loses_nothing_stored(
        broker, mqtt, failing_disk, publisher, durability):
    from communicator.common.exceptions import ProtocolError, Status

    prefix = f"erofs/{durability}"
    config = dict(client_id=f"eq1-erofs-pub-{durability}", clean_session=False,
                  persistence_dir=failing_disk.mountpoint / "store", durability=durability,
                  persistence_interval=0.05, queue_before_connect=True)
    pub = mqtt(broker, connect=False, **config)
    before = publish_before_the_fault(pub, prefix, 100)
    if durability == "batched":
        failing_disk.sync()
    failing_disk.turn_read_only()
    assert failing_disk.is_read_only()
    # Both modes: the record's write(2) itself fails (EROFS), so the very next publish is
    # refused with its status.
    with pytest.raises(ProtocolError) as refused:
        pub.publish_async(f"{prefix}/{len(before)}", b"x", qos=1)
    assert refused.value.status == Status.STORE_READ_ONLY, refused.value
    assert "Read-only file system" in refused.value.detail, refused.value.detail
    with pytest.raises(ProtocolError) as again:
        pub.publish_async(f"{prefix}/{len(before) + 1}", b"x", qos=1)
    assert again.value.status == Status.STORE_READ_ONLY, again.value
    # The C API says the same: a client opening a store on the read-only file system.
    r = subprocess.run([str(publisher), broker.host, str(broker.port),
                        str(failing_disk.mountpoint / "other-store"), durability, "1", "0", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "ERROR client_new EQ1_STATUS_STORE_READ_ONLY" in r.stdout, \
        r.stdout + r.stderr
    pub.close()
    failing_disk.repair()
    restored = reopen_and_deliver(mqtt, broker, config, f"eq1-erofs-sub-{durability}", prefix,
                                  set(range(len(before))))
    assert restored == set(range(len(before))), "exactly what was accepted, nothing refused"
