"""pytest at the checkout's root: collect the checkout as a plain folder, not as a Python package.

The root ``__init__.py`` is the FiftyOne plugin's entry point (relative imports, loaded by FiftyOne under
the plugin's name). Left alone, pytest imports it as a package named after the checkout's folder, which
fails for every test whenever that name is not a Python identifier (``samtrack-main``, ``wt-1``).
"""

from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent


class _CheckoutAsPlainFolder:
    """Registered globally: the hook for the checkout itself is looked up in its parent's scope."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if Path(path).resolve() == CHECKOUT:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    config.pluginmanager.register(_CheckoutAsPlainFolder(), "samtrack-checkout-as-plain-folder")
