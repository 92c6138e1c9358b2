"""``wspool dev`` says that it runs open, and which limits still hold."""

from __future__ import annotations

from wspool.core.config import DEV_OPTIONS, DevSettings
from wspool.core.options import load_settings
from wspool.dev import _banner


def test_the_dev_banner_says_anyone_may_connect_and_shows_the_limits() -> None:
    settings = load_settings(
        DevSettings, DEV_OPTIONS, {"security.messages_per_second": "0"}, environ={}
    )
    banner = _banner(settings, [])
    assert "OPEN: no tokens are checked" in banner
    assert "100 connections and 20 attempts/s per address" in banner
    assert "unlimited messages/s" in banner


def test_the_dev_banner_links_the_dashboard() -> None:
    settings = load_settings(DevSettings, DEV_OPTIONS, {"port": "8080"}, environ={})
    assert "  dashboard http://127.0.0.1:8080/dashboard/" in _banner(settings, []).splitlines()
