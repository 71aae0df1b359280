"""scripts/install_plugin.sh: a plugins folder of its own holding a link to this checkout, and the shadowing warning."""

import os
import subprocess
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]


def _install(plugins_dir):
    env = {k: v for k, v in os.environ.items() if k != "FIFTYONE_PLUGINS_DIR"}
    return subprocess.run([str(REPO_DIR / "scripts" / "install_plugin.sh"), str(plugins_dir)], env=env,
                          capture_output=True, text=True)


def test_install_links_the_checkout_into_a_folder_of_its_own(tmp_path):
    result = _install(tmp_path / "plugins")
    assert result.returncode == 0, result.stderr
    link = tmp_path / "plugins" / "samtrack"
    assert link.is_symlink() and link.resolve() == REPO_DIR.resolve()
    assert "FiftyOne finds @samtrack/samtrack at" in result.stdout and "WARNING" not in result.stderr
    assert f"export FIFTYONE_PLUGINS_DIR={(tmp_path / 'plugins').resolve()}" in result.stdout


def test_a_second_copy_of_the_plugin_is_reported_as_shadowing(tmp_path):
    plugins_dir = tmp_path / "checkouts"
    other = plugins_dir / "another-checkout"
    other.mkdir(parents=True)
    (other / "fiftyone.yml").write_text((REPO_DIR / "fiftyone.yml").read_text())
    result = _install(plugins_dir)
    assert result.returncode == 0, result.stderr
    assert "WARNING: 2 plugins named @samtrack/samtrack" in result.stderr
    assert str(other) in result.stderr and "scripts/install_plugin.sh" in result.stderr


def test_the_parent_of_the_checkout_is_refused(tmp_path):
    result = _install(REPO_DIR.parent)
    assert result.returncode == 2
    assert "contains this checkout" in result.stderr
    assert not (REPO_DIR.parent / "samtrack").is_symlink()
