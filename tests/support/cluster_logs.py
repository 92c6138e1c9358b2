"""What a cluster's components logged during a failed test, in that test's report.

A tier that starts a cluster registers it for its folder (:func:`register_cluster`); the root
conftest's hooks then note where each component's log ends before a test of that folder, and on
failure append what each one logged since, a section per component.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kubernetes_testenv import Cluster

__all__ = ["cluster_for", "register_cluster", "unregister_cluster"]

_CLUSTERS = pytest.StashKey[dict[Path, Cluster]]()


def register_cluster(config: pytest.Config, folder: Path, cluster: Cluster) -> None:
    config.stash.setdefault(_CLUSTERS, {})[folder] = cluster


def unregister_cluster(config: pytest.Config, folder: Path) -> None:
    config.stash.setdefault(_CLUSTERS, {}).pop(folder, None)


def cluster_for(item: pytest.Item) -> Cluster | None:
    """The cluster registered for the folder that holds ``item``, if any."""
    for folder, cluster in item.config.stash.get(_CLUSTERS, {}).items():
        if folder in item.path.parents:
            return cluster
    return None
