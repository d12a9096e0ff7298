"""The demo's sample repository: a small Python inventory service with a real pytest suite."""

from __future__ import annotations

from pathlib import Path

from orchestrator.workspace import git

FILES = {
    "README.md": """# inventory

A tiny inventory service: items with a quantity and a unit price.

    python -m pytest tests        # the test suite
    python staging/check.py       # the staging suite
    python scripts/deploy.py      # "deploys" to $INVENTORY_DEPLOY_DIR
""",
    ".gitignore": "__pycache__/\n.pytest_cache/\ndeployed/\n",
    "inventory/__init__.py": '"""A tiny inventory service."""\n',
    "inventory/core.py": '''"""Items with a quantity and a unit price."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    name: str
    quantity: int
    unit_price: float


def total_items(items: list[Item]) -> int:
    """How many units are in stock, all items together."""
    return sum(item.quantity for item in items)


def restock(item: Item, amount: int) -> Item:
    """The item with `amount` more units; a negative amount is refused."""
    if amount < 0:
        raise ValueError("restock amount must not be negative")
    return Item(item.name, item.quantity + amount, item.unit_price)
''',
    "tests/__init__.py": "",
    "tests/test_core.py": """import pytest

from inventory.core import Item, restock, total_items

STOCK = [Item("bolt", 10, 0.25), Item("nut", 5, 0.10), Item("gear", 2, 4.00)]


def test_total_items_counts_every_unit():
    assert total_items(STOCK) == 17


def test_total_items_of_nothing_is_zero():
    assert total_items([]) == 0


def test_restock_adds_units():
    assert restock(STOCK[0], 5).quantity == 15


def test_restock_refuses_a_negative_amount():
    with pytest.raises(ValueError):
        restock(STOCK[0], -1)
""",
    "staging/check.py": '''"""The staging suite: exercise the service the way its users do."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory import core  # noqa: E402

stock = [core.Item("bolt", 10, 0.25), core.restock(core.Item("gear", 2, 4.0), 3)]
assert core.total_items(stock) == 15, "total_items"
if hasattr(core, "total_value"):
    assert abs(core.total_value(stock) - 22.5) < 1e-9, "total_value"
print("staging: all checks passed")
''',
    "scripts/deploy.py": '''"""Deploy: copy the package to $INVENTORY_DEPLOY_DIR."""

import os
import shutil
import subprocess
from pathlib import Path

target = Path(os.environ.get("INVENTORY_DEPLOY_DIR", "deployed"))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True, check=False).stdout.strip()
shutil.copytree("inventory", target / "inventory", dirs_exist_ok=True)
(target / "deploy.log").write_text(f"deployed inventory at {commit}\\n")
print(f"deployed inventory at {commit} to {target}")
''',
}


def create_sample_repo(path: Path) -> Path:
    """Write the sample service at `path` and commit it on `main`."""
    path.mkdir(parents=True, exist_ok=False)
    for relative, content in FILES.items():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    git.git(path, "init", "--quiet", "--initial-branch=main")
    git.git(path, "add", "--all")
    git.git(
        path,
        "commit",
        "--quiet",
        "-m",
        "inventory: the service and its tests",
        extra_env=git.identity_env(path),
    )
    return path
