"""``python -m samtrack_ops.models``: the checkpoint registry with what is present in the cache folder."""

from samtrack_ops.models.registry import CACHE_DIR_ENV, cache_dir, list_checkpoints


def print_registry():
    print(f"cache folder: {cache_dir()}  (env {CACHE_DIR_ENV})")
    for row in list_checkpoints():
        state = "present" if row["present"] else "missing"
        print(f"{row['name']:24} {state:8} {row['path']}\n{'':24} {row['url']}")


if __name__ == "__main__":
    print_registry()
