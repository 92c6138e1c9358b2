"""Cleaning a test cluster's iptables state: its own chains and the CNI plugins' shared chains
once nothing uses them go; another CNI user's chains in use stay."""

from __future__ import annotations

from tests.support.cluster_host import _iptables_without_ours

NETWORK = "wspool-e2e"

LEFT_OVER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
:KUBE-FORWARD - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A FORWARD -j KUBE-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"""  # noqa: E501 (iptables-save lines as they are)


def test_left_over_cluster_and_shared_cni_chains_all_go() -> None:
    cleaned = _iptables_without_ours(LEFT_OVER, NETWORK)
    assert cleaned is not None
    assert "KUBE-" not in cleaned
    assert "CNI-" not in cleaned
    assert "-A INPUT -p tcp --dport 22 -j ACCEPT" in cleaned  # nobody else's rule is touched
    assert cleaned.count("COMMIT") == 2


def test_shared_chains_a_running_container_uses_stay() -> None:
    in_use = LEFT_OVER.replace(
        ":CNI-HOSTPORT-SETMARK - [0:0]\n",
        ":CNI-HOSTPORT-SETMARK - [0:0]\n:CNI-DN-abc - [0:0]\n",
    ).replace(
        "-A CNI-HOSTPORT-MASQ -m mark",
        '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"podman\\"" -j CNI-DN-abc\n'
        "-A CNI-DN-abc -p tcp --dport 8080 -j DNAT --to-destination 10.88.0.2:80\n"
        "-A CNI-HOSTPORT-MASQ -m mark",
    )
    cleaned = _iptables_without_ours(in_use, NETWORK)
    assert cleaned is not None
    assert "KUBE-" not in cleaned
    for kept in ("CNI-HOSTPORT-DNAT", "CNI-DN-abc", "-j DNAT --to-destination 10.88.0.2:80"):
        assert kept in cleaned
    # The filter table's shared chains hold no container's rule: they go.
    assert "CNI-FORWARD" not in cleaned


def test_without_a_network_only_the_unused_shared_chains_go() -> None:
    cleaned = _iptables_without_ours(LEFT_OVER, None)
    assert cleaned is not None
    assert "CNI-" not in cleaned
    assert "KUBE-FORWARD" in cleaned  # a cluster's own chains are left to its teardown


def test_nothing_to_clean_changes_nothing() -> None:
    clean = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"
    assert _iptables_without_ours(clean, NETWORK) is None
