"""Installing the plugin into a plugins folder of its own, and spotting copies of it that shadow each other.

FiftyOne loads every folder holding a ``fiftyone.yml`` anywhere under ``FIFTYONE_PLUGINS_DIR``; when two hold
``@samtrack/samtrack`` (e.g. the plugins dir is the parent of several checkouts), the App silently uses the
first one it finds. ``scripts/install_plugin.sh`` makes a folder holding only a link to one checkout, and
:func:`shadowing_problem` names the copies when there are several (the plugin logs it when it registers).
"""

import os

PLUGIN_NAME = "@samtrack/samtrack"


def plugin_copies():
    """Folders under FiftyOne's plugins dir that hold ``@samtrack/samtrack``; the App uses the first."""
    import fiftyone.plugins as fop

    return [plugin.directory for plugin in fop.list_plugins(enabled="all", shadowed="all") if plugin.name == PLUGIN_NAME]


def shadowing_problem(checkout):
    """A message naming the copies of the plugin when there are several (None for one), saying whether the App
    uses ``checkout`` (this folder) and how to fix it."""
    import fiftyone as fo

    copies = plugin_copies()
    if len(copies) < 2:
        return None
    used = os.path.realpath(copies[0])
    which = "this checkout" if used == os.path.realpath(checkout) else f"{used}, not {checkout}"
    return (f"{len(copies)} plugins named {PLUGIN_NAME} under the plugins dir {fo.config.plugins_dir}: "
            f"{', '.join(copies)}. The App uses {which}. Give the App a plugins folder holding only a link to "
            f"the checkout you want: scripts/install_plugin.sh (see the README's Set-up).")
