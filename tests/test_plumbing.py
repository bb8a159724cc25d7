"""Sensitive plumbing has one path: keys are loaded by ``tasks.deid.keys.load_key`` only, Prefect servers are
started by ``deployments.server`` only (checked on the syntax tree of every product module)."""

from __future__ import annotations

import ast
from pathlib import Path

from tasks.deid.keys import load_key, write_new_key
from tests.test_imports import PACKAGES, ROOT, module_files

KEY_MODULES = {"tasks.deid.keys", "tasks.config"}
SERVER_MODULE = "deployments.server"


def _trees() -> dict[str, ast.AST]:
    return {name: ast.parse(path.read_text()) for name, path in module_files(ROOT, PACKAGES).items()}


def _reads_key_itself(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "deid_key":
            return True
        if isinstance(node, ast.Name | ast.alias) and getattr(node, "id", getattr(node, "name", "")) == "KEY_ENV":
            return True
        if isinstance(node, ast.Call | ast.Subscript):
            parts = node.args if isinstance(node, ast.Call) else [node.slice]
            if any(isinstance(a, ast.Constant) and a.value in ("MEDFLOW_DEID_KEY", "MEDFLOW_KEY_FILE") for a in parts):
                return True
    return False


def _starts_a_server(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.Attribute) and getattr(node, "id", getattr(node, "attr", "")) in (
            "SubprocessASGIServer",
            "prefect_test_harness",
        ):
            return True
        if isinstance(node, ast.List | ast.Tuple):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if any(words[i : i + 2] == ["server", "start"] for i in range(len(words))):
                return True
    return False


def test_only_the_key_module_reads_a_key() -> None:
    readers = {name for name, tree in _trees().items() if _reads_key_itself(tree)}
    assert readers <= KEY_MODULES, sorted(readers - KEY_MODULES)


def test_only_one_module_starts_prefect_servers() -> None:
    starters = {name for name, tree in _trees().items() if _starts_a_server(tree)}
    assert starters == {SERVER_MODULE}


def test_the_checks_see_what_they_look_for() -> None:
    assert _reads_key_itself(ast.parse("import os\nos.environ.get('MEDFLOW_DEID_KEY')"))
    assert _reads_key_itself(ast.parse("k = settings.deid_key.get_secret_value()"))
    assert _reads_key_itself(ast.parse("from tasks.deid.keys import KEY_ENV\nos.environ.get(KEY_ENV)"))
    assert not _reads_key_itself(ast.parse("k = load_key(settings=settings)"))
    assert _starts_a_server(ast.parse("cmd = ['prefect', 'server', 'start']"))


def test_load_key_falls_back_to_the_settings(tmp_path: Path, monkeypatch) -> None:
    from tasks.config import load_settings

    path = tmp_path / "k"
    write_new_key(path)
    monkeypatch.delenv("MEDFLOW_DEID_KEY", raising=False)
    monkeypatch.setenv("MEDFLOW_KEY_FILE", str(path))
    assert load_key() == load_key(path)  # MEDFLOW_KEY_FILE, read when no key is passed
    monkeypatch.delenv("MEDFLOW_KEY_FILE")
    monkeypatch.setenv("MEDFLOW_DEID_KEY", "ab" * 32)
    assert load_key().secret == bytes.fromhex("ab" * 32)
    assert load_key(settings=load_settings(key_file=path)) == load_key(path)  # settings given win over env
