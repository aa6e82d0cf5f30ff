#!/usr/bin/env python3
"""List the top-level config keys that axolotl's pydantic schema accepts.

Reads axolotl's source statically (with `ast`; nothing is imported or executed),
starting at the class that wraps every config option (AxolotlInputConfig), and
follows its base classes across modules through the `from axolotl... import`
statements. Every annotated class attribute of the class and of all its bases is
a key, plus Field(alias=...) / Field(validation_alias=...) names (the schema sets
populate_by_name, so both the field name and its alias are accepted).

Usage:
  python3 scripts/axolotl-keys.py CHECKOUT_DIR COMMIT [--commit-date ISO] [--git-dir DIR]

CHECKOUT_DIR is an axolotl checkout, or a directory holding files extracted from
one (e.g. `git archive COMMIT src/axolotl | tar -x -C DIR`). The commit date is
taken from --commit-date, else asked of git (--git-dir, or CHECKOUT_DIR itself).
Prints JSON on stdout; e.g. regenerate src/train/axolotl-keys.json with
  python3 scripts/axolotl-keys.py /tmp/axolotl $SHA > src/train/axolotl-keys.json
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys

SOURCE = "https://github.com/axolotl-ai-cloud/axolotl"
ROOT_CLASS = "AxolotlInputConfig"
# Where the wrapper class has lived, newest layout first.
ROOT_MODULES = [
    "axolotl.utils.schemas.config",
    "axolotl.utils.config.models.input.v0_4_1",
]
# Bases that end the walk: they contribute no config keys.
TERMINAL_BASES = {"BaseModel", "object", "Generic", "ABC"}
# Class attributes pydantic treats as model settings, not fields.
NOT_FIELDS = {"model_config"}


class Module:
    def __init__(self, name: str, path: str, rel: str):
        self.name = name
        self.path = path
        self.rel = rel
        with open(path, encoding="utf-8") as fh:
            self.tree = ast.parse(fh.read(), filename=path)
        self.classes: dict[str, ast.ClassDef] = {}
        self.imports: dict[str, tuple[str, str]] = {}  # local name -> (module, name)
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        for node in self.tree.body:
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level:
                    base = package.split(".")
                    if node.level > 1:
                        base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([mod] if mod else []))
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (mod, alias.name)


class Walker:
    def __init__(self, root_dir: str):
        self.root_dir = root_dir
        self.modules: dict[str, Module | None] = {}
        self.read: list[str] = []
        self.keys: set[str] = set()
        self.seen: set[tuple[str, str]] = set()

    def module_file(self, name: str) -> tuple[str, str] | None:
        parts = name.split(".")
        for prefix in ("src", ""):
            for tail in (os.path.join(*parts) + ".py", os.path.join(*parts, "__init__.py")):
                rel = os.path.join(prefix, tail) if prefix else tail
                full = os.path.join(self.root_dir, rel)
                if os.path.isfile(full):
                    return full, rel.replace(os.sep, "/")
        return None

    def module(self, name: str) -> Module | None:
        if name not in self.modules:
            found = self.module_file(name) if name.split(".")[0] == "axolotl" else None
            self.modules[name] = Module(name, *found) if found else None
            if found:
                self.read.append(found[1])
        return self.modules[name]

    def resolve(self, mod: Module, expr: ast.expr) -> tuple[Module, ast.ClassDef] | None:
        """Find the class a base-class expression names, or None for outside classes."""
        if isinstance(expr, ast.Subscript):  # Generic[T] and the like
            expr = expr.value
        if isinstance(expr, ast.Name):
            name = expr.id
            if name in mod.classes:
                return mod, mod.classes[name]
            if name in mod.imports:
                src_mod, src_name = mod.imports[name]
                target = self.module(src_mod)
                if target is None:  # maybe `from package import submodule`
                    return None
                if src_name in target.classes:
                    return target, target.classes[src_name]
                # re-exported through another import in that module
                return self.resolve(target, ast.Name(id=src_name))
            return None
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            # module.Class where `module` was imported with from-import
            if expr.value.id in mod.imports:
                pkg, sub = mod.imports[expr.value.id]
                target = self.module(f"{pkg}.{sub}" if pkg else sub)
                if target and expr.attr in target.classes:
                    return target, target.classes[expr.attr]
        return None

    def walk(self, mod: Module, cls: ast.ClassDef) -> None:
        if (mod.name, cls.name) in self.seen:
            return
        self.seen.add((mod.name, cls.name))
        self.collect(cls.body)
        for base in cls.bases:
            name = base.id if isinstance(base, ast.Name) else None
            if name in TERMINAL_BASES:
                continue
            found = self.resolve(mod, base)
            if found is None:
                print(f"warning: base {ast.unparse(base)} of {cls.name} not found in the sources", file=sys.stderr)
                continue
            self.walk(*found)

    def collect(self, body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.If, ast.Try)):  # fields declared conditionally
                for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                    self.collect(block)
                for handler in getattr(node, "handlers", []):
                    self.collect(handler.body)
                continue
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            name = node.target.id
            if name.startswith("_") or name in NOT_FIELDS or is_classvar(node.annotation):
                continue
            self.keys.add(name)
            self.keys.update(aliases(node.value))


def is_classvar(annotation: ast.expr) -> bool:
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    return ast.unparse(annotation).split(".")[-1] == "ClassVar"


def string_args(call: ast.expr) -> list[str]:
    """Strings in an alias value: "x", AliasChoices("x", "y"), AliasChoices("x", AliasPath("y", 0))."""
    if isinstance(call, ast.Constant) and isinstance(call.value, str):
        return [call.value]
    if isinstance(call, ast.Call):
        fn = ast.unparse(call.func).split(".")[-1]
        if fn == "AliasChoices":
            return [s for a in call.args for s in string_args(a)]
        if fn == "AliasPath" and call.args:  # only a one-element path is a top-level key
            first = call.args[0]
            if len(call.args) == 1 and isinstance(first, ast.Constant) and isinstance(first.value, str):
                return [first.value]
    return []


def aliases(value: ast.expr | None) -> list[str]:
    out: list[str] = []
    if isinstance(value, ast.Call) and ast.unparse(value.func).split(".")[-1] == "Field":
        for kw in value.keywords:
            if kw.arg in ("alias", "validation_alias"):
                out.extend(string_args(kw.value))
    return out


def commit_date(commit: str, git_dir: str | None, checkout: str) -> str | None:
    cmd = ["git", f"--git-dir={git_dir}"] if git_dir else ["git", "-C", checkout]
    try:
        res = subprocess.run(cmd + ["log", "-1", "--format=%cI", commit, "--"],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return res.stdout.strip() or None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkout", help="axolotl checkout, or a directory of files extracted from one")
    ap.add_argument("commit", help="the 40-hex commit the files come from")
    ap.add_argument("--commit-date", help="commit date (ISO 8601); default: ask git")
    ap.add_argument("--git-dir", help="git directory to read the commit date from")
    args = ap.parse_args()
    if not re.fullmatch(r"[0-9a-f]{40}", args.commit):
        ap.error("commit must be 40 lowercase hex digits")

    walker = Walker(args.checkout)
    for name in ROOT_MODULES:
        mod = walker.module(name)
        if mod and ROOT_CLASS in mod.classes:
            walker.walk(mod, mod.classes[ROOT_CLASS])
            break
    else:
        print(f"error: {ROOT_CLASS} not found under {args.checkout}", file=sys.stderr)
        return 1

    out = {
        "source": SOURCE,
        "commit": args.commit,
        "commit_date": args.commit_date or commit_date(args.commit, args.git_dir, args.checkout),
        "paths": sorted(walker.read),
        "generated_by": "scripts/axolotl-keys.py",
        "keys": sorted(walker.keys),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
