"""What each install brings: the client alone needs websockets; a missing extra is named."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_client_imports_nothing_beyond_websockets() -> None:
    result = _run(
        """
        import importlib.metadata as metadata, sys
        before = set(sys.modules)
        import wspool.client
        owners = metadata.packages_distributions()
        loaded = {name.partition(".")[0] for name in set(sys.modules) - before}
        print(sorted({d for top in loaded for d in owners.get(top, ()) if d != "websocket-pool"}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['websockets']"


def test_a_command_without_its_extra_names_the_extra_to_install() -> None:
    result = _run(
        """
        import sys
        sys.modules["jwt"] = None  # as if only the client were installed
        sys.argv = ["wspool", *sys.argv[1:]]
        from wspool.__main__ import main
        sys.exit(main())
        """,
        "server",
        "--help",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "wspool server: jwt is not installed; install websocket-pool with its [server] extra"
        " (pip install '.[server]' in the source tree)"
    )
    assert "Traceback" not in result.stderr
