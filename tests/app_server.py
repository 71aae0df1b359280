"""Run the real FiftyOne App server and drive it with the system's headless Chromium.

The App server is started as a child process (``python -m fiftyone.server.main``) with the test
session's environment, so it sees the same throwaway database (``FIFTYONE_DATABASE_NAME``) and the
same plugins directory (``FIFTYONE_PLUGINS_DIR``) as the tests. The browser is Debian's Chromium,
launched through Playwright's Python package (no browser download: ``executable_path``).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}


def chromium_path():
    """Returns the path of the system Chromium, or raises naming the package to install."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "Chromium not found: install it with `apt-get install -y chromium` "
            "(./test.sh does this on Debian when run as root)."
        )
    return path


def free_port():
    """Returns a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """The FiftyOne App server in a child process, listening on 127.0.0.1.

    Args:
        log_path: file receiving the server's stdout and stderr
        env (None): environment of the child (default: this process's)
    """

    def __init__(self, log_path, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = dict(os.environ if env is None else env)
        self._process = None

    def start(self, timeout=120):
        """Starts the server and waits until it answers HTTP requests."""
        command = [sys.executable, "-m", "fiftyone.server.main"]
        command += ["--address", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                command, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"FiftyOne App server did not start on {self.url}; "
                    f"its log:\n{self.log_tail()}"
                )
            time.sleep(0.5)
        return self

    def _answers(self):
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, n_chars=4000):
        with open(self.log_path, "rb") as log:
            return log.read().decode(errors="replace")[-n_chars:]

    def stop(self):
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


ENTERPRISE_POPOVER_SEEN_KEY = "fiftyone-enterprise-tooltip-seen"  # the App's own key (fiftyone 1.x bundle)


@contextlib.contextmanager
def chromium_context(playwright, user_data_dir):
    """Yields a Playwright browser context of the system Chromium with a fresh profile.

    The profile is one that has seen the App before: the App's "Accelerate your workflow" pop-over (shown on a
    first visit, a moment after the grid, whenever that is) would take every click until dismissed, and a
    dialog opened meanwhile covers its Dismiss button. The App skips it when this local-storage key is set."""
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=chromium_path(),
        headless=True,
        args=BROWSER_FLAGS,
        viewport=VIEWPORT,
    )
    context.add_init_script(f"window.localStorage.setItem('{ENTERPRISE_POPOVER_SEEN_KEY}', 'true')")
    try:
        yield context
    finally:
        context.close()
