"""The container images of the e2e and compose tiers: built with podman from the checkout.

No image can be pulled where these tests run, so everything starts from a local Debian base made
by ``tools/base-image.sh``: ``build_test_images()`` builds the project's image from its Dockerfile
on that base, and a Redis image (the chart's bundled Redis and compose.yaml's run it as uid 999
with arguments only) from it too; tests/compose runs them with podman as they are, and for the
e2e tier ``load_into_containerd()`` copies them into containerd's ``k8s.io``
namespace, where the kubelet looks, under their full names. Builds go through
``tools/build-image.sh``, as ``make image`` does, and reuse podman's layer cache. Each step's
output is handed line by line to a ``progress`` callback while it runs (builds take minutes);
a failed step raises ``ImageError`` ending with the last lines its tool wrote.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "APP_IMAGE",
    "REDIS_IMAGE",
    "ImageError",
    "Progress",
    "TestImages",
    "build_test_images",
    "load_into_containerd",
]

REPO = Path(__file__).resolve().parents[2]
APP_IMAGE = "docker.io/acc/websocket-pool:e2e"
"""Fully qualified, as Kubernetes normalizes the chart's ``acc/websocket-pool``."""
REDIS_IMAGE = "localhost/wspool-redis:e2e"
TAIL_LINES = 30

# Protected mode refuses clients from other addresses when Redis runs without a config file;
# the official image turns it off at build time, so pods reach this one the same way.
REDIS_DOCKERFILE = """\
FROM {base}
RUN mkdir /data && chown 999:999 /data
WORKDIR /data
USER 999:999
EXPOSE 6379
ENTRYPOINT ["redis-server", "--protected-mode", "no"]
"""

Progress = Callable[[str], None]
"""Receives each line of output of a running step."""


class ImageError(RuntimeError):
    """A build or copy step failed; the message ends with the last lines its tool wrote."""


@dataclass(frozen=True)
class TestImages:
    """What the e2e session runs: the project's image and a Redis image, by full name."""

    __test__ = False  # a support class, not a pytest test class

    app: str
    redis: str

    @property
    def names(self) -> tuple[str, str]:
        """Both images' names."""
        return (self.app, self.redis)


def to_stderr(line: str) -> None:
    """The default progress: each line on stderr (pytest shows it with ``-s``)."""
    print(line, file=sys.stderr, flush=True)


def build_test_images(
    app: str = APP_IMAGE, redis: str = REDIS_IMAGE, progress: Progress = to_stderr
) -> TestImages:
    """Make the base if needed, then build both images on it; podman's cache makes reruns quick."""
    base = ensure_base_image(progress)
    timed(
        f"build {app}",
        progress,
        lambda: build(["-t", app, "--build-arg", f"BASE_IMAGE={base}", str(REPO)], progress),
    )
    with tempfile.TemporaryDirectory(prefix="wspool-redis-image-") as context:
        (Path(context) / "Dockerfile").write_text(REDIS_DOCKERFILE.format(base=base))
        timed(f"build {redis}", progress, lambda: build(["-t", redis, context], progress))
    return TestImages(app=app, redis=redis)


def ensure_base_image(progress: Progress) -> str:
    """The local base image's name, made by ``tools/base-image.sh`` unless it exists."""
    script = str(REPO / "tools" / "base-image.sh")
    return run([script], progress, what="base image", result_on_stdout=True).strip()


def build(arguments: Sequence[str], progress: Progress) -> None:
    """``podman build`` on the local base only (nothing is pulled), through build-image.sh."""
    require("podman")
    command = [str(REPO / "tools" / "build-image.sh"), "--pull=never", *arguments]
    run(command, progress, what="image build")


def load_into_containerd(
    images: TestImages, containerd_address: str, progress: Progress = to_stderr
) -> None:
    """Copy the images into containerd's ``k8s.io`` namespace, each under its full name.

    One archive holds them all, so the layers they share (the base) are copied once.
    """
    names = " and ".join(images.names)
    timed(f"load {names}", progress, lambda: copy(images.names, containerd_address, progress))


def copy(names: Sequence[str], containerd_address: str, progress: Progress) -> None:
    """``podman save -m NAMES | ctr --address ADDRESS -n k8s.io images import -``."""
    require("podman")
    require("ctr")
    save_command = ["podman", "save", "--quiet", "--format", "docker-archive", "-m", *names]
    import_command = ["ctr", "--address", containerd_address, "-n", "k8s.io", "images", "import"]
    with tempfile.TemporaryFile() as save_errors:
        save = subprocess.Popen(save_command, stdout=subprocess.PIPE, stderr=save_errors)
        assert save.stdout is not None
        import_error: ImageError | None = None
        try:
            run([*import_command, "-"], progress, what="ctr images import", stdin=save.stdout)
        except ImageError as error:
            import_error = error
        finally:
            save.stdout.close()  # ctr has its own copy; a failed ctr then stops podman save
        save_status = save.wait()
        save_errors.seek(0)
        save_lines = save_errors.read().decode(errors="replace").splitlines()
    # When podman could not write the archive, that is the cause, not what ctr made of it; when
    # ctr failed first, podman save dies of SIGPIPE (a negative status) and ctr's error stands.
    if save_status > 0 or (save_status < 0 and import_error is None):
        raise ImageError(failure(" ".join(save_command[:2] + list(names)), save_status, save_lines))
    if import_error is not None:
        raise import_error


def run(
    command: Sequence[str],
    progress: Progress,
    *,
    what: str,
    stdin: IO[bytes] | None = None,
    result_on_stdout: bool = False,
) -> str:
    """Run a command, passing its output to progress line by line as it comes.

    With ``result_on_stdout`` only stderr is progress, and stdout (one short line, such as an
    image name, so it cannot fill its pipe meanwhile) is returned; else both are progress.
    """
    try:
        process = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if result_on_stdout else subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as error:
        raise ImageError(f"{what}: {command[0]} not found") from error
    with process:  # closes the pipes
        output = process.stderr if result_on_stdout else process.stdout
        assert output is not None
        assert process.stdout is not None
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        for line in output:
            tail.append(line.rstrip())
            progress(line.rstrip())
        result = process.stdout.read() if result_on_stdout else ""
        status = process.wait()
    if status != 0:
        raise ImageError(failure(what, status, tail))
    return result


def require(tool: str) -> None:
    """Fail with one line when a tool the images need is not installed."""
    if shutil.which(tool) is None:
        raise ImageError(f"the e2e images need {tool} on PATH")


def failure(what: str, status: int, lines: Iterable[str]) -> str:
    """The error message of a failed step: what, its status, its last lines of output."""
    last = "\n".join(list(lines)[-TAIL_LINES:]) or "(no output)"
    return f"{what} failed (exit status {status}); last output:\n{last}"


def timed(label: str, progress: Progress, step: Callable[[], None]) -> None:
    """Run a step, telling progress how long it took."""
    progress(f"images: {label} ...")
    started = time.monotonic()
    step()
    progress(f"images: {label} done in {time.monotonic() - started:.1f}s")
