"""Security rules, checked on the source's syntax tree (so a comment or a docstring cannot fool
them, and an aliased import cannot hide from them).

* No module of ``src/thresher`` imports a code-running deserialiser (``pickle``, ``dill``,
  ``cloudpickle``, ``joblib``, ``marshal``, ``shelve``, ``jsonpickle``), except
  ``data/cifar.py``, whose ``CifarUnpickler`` admits numpy arrays alone.
* Every ``torch.load`` call passes ``weights_only=True`` literally.
* Every ``np.load`` call passes ``allow_pickle=False`` (or leaves numpy's default, False).
* Nobody calls ``eval``/``exec`` or ``yaml.load`` (only ``yaml.safe_load``).

Behavioural checks live beside the readers and are not repeated here: a CIFAR batch whose
pickle names ``os.system`` is refused before anything runs
(``tests/test_data_cifar.py::test_malicious_pickle_is_refused_without_running``,
``::test_builtins_eval_is_refused``, and the ``cifar-code-in-the-pickle`` case of
``tests/test_trust_badinput.py``); a ``.pt`` file that carries code is refused and never run
(``tests/test_models_loading.py::test_pickle_with_code_is_refused_and_never_run``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "thresher"
UNPICKLER_HOME = "data/cifar.py"
CODE_RUNNING = frozenset({"pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve",
                          "jsonpickle", "_pickle"})  # fmt: skip


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (p.relative_to(SRC).as_posix(), ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
        for p in sorted(SRC.rglob("*.py"))
    ]


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for an attribute chain, ``""`` for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _violations(rel: str, tree: ast.Module) -> list[str]:
    found: list[str] = []
    torch_names, numpy_names = {"torch"}, {"np", "numpy"}
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in CODE_RUNNING and rel != UNPICKLER_HOME:
                    found.append(f"{where} imports {alias.name}")
                if root == "torch":
                    torch_names.add(alias.asname or "torch")
                if root == "numpy":
                    numpy_names.add(alias.asname or "numpy")
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root in CODE_RUNNING and rel != UNPICKLER_HOME:
                found.append(f"{where} imports from {node.module}")
            if root == "torch" and any(a.name == "load" for a in node.names):
                found.append(f"{where} imports torch.load by name (call it as torch.load)")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, attr = name.rpartition(".")
            weights_only = _keyword(node, "weights_only")
            if attr == "load" and head in torch_names and not _is_const(weights_only, True):
                found.append(f"{where} calls {name} without weights_only=True")
            flag = _keyword(node, "allow_pickle")
            if attr == "load" and head in numpy_names and flag and not _is_const(flag, False):
                found.append(f"{where} calls {name} with allow_pickle not False")
            if name in ("eval", "exec"):
                found.append(f"{where} calls {name}")
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
                found.append(f"{where} calls {name}; use yaml.safe_load")
    return found


def test_no_code_running_deserialiser_in_the_package() -> None:
    modules = _modules()
    assert len(modules) > 20  # the walk found the package
    problems = [v for rel, tree in modules for v in _violations(rel, tree)]
    assert problems == []


@pytest.mark.parametrize(
    ("snippet", "problem"),
    [
        ("import pickle", "imports pickle"),
        ("import cloudpickle as cp", "imports cloudpickle"),
        ("from joblib import load", "imports from joblib"),
        ("import torch\ntorch.load('x.pt')", "without weights_only=True"),
        ("import torch as T\nT.load('x.pt', weights_only=False)", "without weights_only=True"),
        ("from torch import load", "imports torch.load by name"),
        ("import numpy as np\nnp.load('x.npy', allow_pickle=True)", "allow_pickle not False"),
        ("eval('1 + 1')", "calls eval"),
        ("import yaml\nyaml.load(open('c'))", "use yaml.safe_load"),
    ],
)
def test_the_checker_catches_each_forbidden_form(snippet: str, problem: str) -> None:
    found = _violations("somewhere.py", ast.parse(snippet))
    assert any(problem in f for f in found), found


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load('x.pt', weights_only=True, map_location='cpu')",
        "import numpy as np\nnp.load('x.npy', mmap_mode='r', allow_pickle=False)",
        "import numpy as np\nnp.load('x.npy')",
        "import yaml\nyaml.safe_load('a: 1')",
    ],
)
def test_the_checker_accepts_the_safe_forms(snippet: str) -> None:
    assert _violations("somewhere.py", ast.parse(snippet)) == []


def test_pickle_is_only_reached_through_the_restricted_unpickler() -> None:
    """In ``data/cifar.py`` itself, every unpickling goes through ``CifarUnpickler``: no
    ``pickle.load``/``pickle.loads``/``pickle.Unpickler(...)`` call on its own."""
    tree = ast.parse((SRC / UNPICKLER_HOME).read_text(encoding="utf-8"))
    direct = [
        _dotted(n.func)
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and _dotted(n.func) in ("pickle.load", "pickle.loads", "pickle.Unpickler")
    ]
    assert direct == []
    unpicklers = [
        n.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef) and any(_dotted(b) == "pickle.Unpickler" for b in n.bases)
    ]
    assert unpicklers == ["CifarUnpickler"]
