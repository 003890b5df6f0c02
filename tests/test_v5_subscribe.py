"""MQTT 5.0 subscribing from C against a real mosquitto (tests/c/eq1subscribe.c): no-local,
retain-as-published, retain handling 0/1/2, a shared subscription splitting a stream, two
overlapping subscriptions routed by subscription identifiers, per-filter SUBACK codes (an
ACL denies one filter) and UNSUBACK codes, and bad input at the C boundary."""

import json
import uuid
from pathlib import Path

import pytest

from harness import cprog


@pytest.fixture(scope="module")
def program(built_library):
    return cprog.compile_c([cprog.repo_root() / "tests/c/eq1subscribe.c"])


def run(program, broker, scenario, valgrind=False, timeout=180):
    prefix = "s" + uuid.uuid4().hex[:8]
    r = cprog.run(program, [broker.host, broker.port, scenario, prefix], timeout=timeout,
                  valgrind=valgrind)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout, r.stdout
    if valgrind:
        cprog.assert_valgrind_clean(r)
    return r.stdout


def test_no_local_subscription_does_not_return_own_messages(program, broker):
    out = run(program, broker, "nolocal")
    assert "ok   - own messages never came back on the no-local subscription" in out


def test_retain_as_published_keeps_the_retain_flag_only_when_asked(program, broker):
    out = run(program, broker, "rap")
    assert "ok   - retain flag kept with retain-as-published" in out
    assert "ok   - retain flag cleared without it" in out


def test_retain_handling_0_1_2_at_new_and_repeated_subscribes(program, broker):
    out = run(program, broker, "retain")
    assert "INFO retain handling 0: first=1 again=1" in out
    assert "INFO retain handling 1: first=1 again=0" in out
    assert "INFO retain handling 2: first=0 again=0" in out


def test_shared_subscription_splits_1000_qos1_messages_between_two_clients(program, broker):
    out = run(program, broker, "shared")
    assert "ok   - every message reached one of the group" in out
    assert "ok   - both members got some" in out


def test_overlapping_subscriptions_each_get_each_message_once_by_identifier(program, broker):
    out = run(program, broker, "overlap")
    assert "ok   - the wide callback got every message exactly once" in out
    assert "ok   - the narrow callback got each of its messages exactly once" in out


# mosquitto's acl_file never refuses a SUBSCRIBE (it only withholds messages); its dynamic
# security plugin does, with SUBACK 0x87. Anonymous clients get the role that denies
# `denied/#`.
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
DYNSEC = {
    "defaultACLAccess": {"publishClientSend": True, "publishClientReceive": True,
                         "subscribe": True, "unsubscribe": True},
    "clients": [],
    "groups": [{"groupname": "anonymous", "roles": [{"rolename": "no-denied"}]}],
    "roles": [{"rolename": "no-denied", "acls": [
        {"acltype": "subscribePattern", "topic": "denied/#", "priority": 0, "allow": False}]}],
    "anonymousGroup": "anonymous",
}


@pytest.mark.skipif(not DYNSEC_PLUGIN.exists(), reason="mosquitto dynamic security plugin")
def test_per_filter_suback_and_unsuback_reason_codes(program, broker_factory, tmp_path):
    config = tmp_path / "dynsec.json"
    config.write_text(json.dumps(DYNSEC))
    broker = broker_factory(extra_conf=f"plugin {DYNSEC_PLUGIN}\n"
                                       f"plugin_opt_config_file {config}")
    out = run(program, broker, "acl", valgrind=True, timeout=300)
    assert "INFO acl codes 0x1 0x87 0x2" in out
    assert "INFO unsuback codes 0 0x11" in out


@pytest.mark.valgrind
def test_bad_input_at_the_c_boundary_is_refused_with_its_status(program, broker):
    out = run(program, broker, "badinput", valgrind=True, timeout=300)
    assert "SUMMARY" in out
