"""Finds the standard-library functions, methods and classes that start processes or run
code, for the pickle deny table (model-analysis/src/pickle/deny.rs).

Walks every module of the running interpreter's standard library with `ast` (nothing
is imported), finds calls to the sinks below, and spreads the taint through the call
graph: a function that calls a tainted function (same module, `self.method`, or
`module.function` through the module's imports) is tainted too, across modules, until
nothing changes. A class is tainted when calling it or restoring its state
(`__init__`, `__new__`, `__setstate__`, `__reduce__`...) is.

Prints one line per finding: `path<TAB>sink` (the sink that taints it, possibly through
other functions). Usage: python3 stdlib_exec_scan.py [--json]
"""

import ast
import json
import os
import sys
import sysconfig

# Calls that start a process, run code, or load code. `module.attr` or builtin name.
# `compile` and `marshal.loads` make code objects without running them: the deny table
# lists them directly, but calling them does not taint (`ast.parse` compiles).
SINKS = {
    "os.system": "runs a shell command",
    "os.popen": "runs a shell command",
    "os.startfile": "opens a file with its program",
    "os.posix_spawn": "starts a process",
    "os.posix_spawnp": "starts a process",
    "pty.spawn": "starts a process on a terminal",
    "_posixsubprocess.fork_exec": "starts a process",
    "subprocess.Popen": "starts a process",
    "subprocess.run": "starts a process",
    "subprocess.call": "starts a process",
    "subprocess.check_call": "starts a process",
    "subprocess.check_output": "starts a process",
    "subprocess.getoutput": "runs a shell command",
    "subprocess.getstatusoutput": "runs a shell command",
    "asyncio.create_subprocess_exec": "starts a process",
    "asyncio.create_subprocess_shell": "runs a shell command",
    "eval": "evaluates code",
    "exec": "executes code",
    "__import__": "imports any module",
    "importlib.import_module": "imports any module",
    "importlib.__import__": "imports any module",
    "importlib.reload": "re-executes a module",
    "runpy.run_module": "runs a module",
    "runpy.run_path": "runs a file",
    "code.interact": "starts an interactive interpreter",
    "pdb.run": "runs code under the debugger",
    "pdb.runeval": "evaluates code under the debugger",
    "pdb.runctx": "runs code under the debugger",
    "pdb.runcall": "calls under the debugger",
    "pdb.set_trace": "starts the debugger",
    "profile.run": "runs code under the profiler",
    "profile.runctx": "runs code under the profiler",
    "cProfile.run": "runs code under the profiler",
    "cProfile.runctx": "runs code under the profiler",
    "pickle.load": "unpickles",
    "pickle.loads": "unpickles",
    "ctypes.CDLL": "loads a native library",
    "ctypes.PyDLL": "loads a native library",
    "ctypes.cdll.LoadLibrary": "loads a native library",
    "webbrowser.open": "opens a browser",
}
for _fn in ("execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
            "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"):
    SINKS["os." + _fn] = "replaces or starts a process"

# Methods through which objects restore or build themselves when unpickled or called.
CONSTRUCTION = {"__init__", "__new__", "__setstate__", "__reduce__", "__reduce_ex__", "__call__",
                "__setitem__", "extend", "append", "add", "__getattr__", "__del__"}

SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def modules(stdlib):
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, stdlib)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            if not rel:
                continue
            yield ".".join(rel), path


class ModuleScan(ast.NodeVisitor):
    """Collects, per function, the dotted names it calls."""

    def __init__(self, module):
        self.module = module
        self.aliases = {}  # local name -> dotted origin ("os", "subprocess.Popen")
        self.functions = {}  # qualname -> set of called dotted names
        self.classes = {}  # qualname -> (list of base names, set of method qualnames)
        self.stack = []
        self.calls_at_import = set()

    def scope(self):
        return ".".join(self.stack)

    def visit_Import(self, node):
        for a in node.names:
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                self.aliases[top] = top
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            parts = self.module.split(".")
            # A package's own module name includes itself; a module's does not.
            parts = parts[: len(parts) - node.level + (1 if self.is_package else 0)]
            base = ".".join(parts + ([node.module] if node.module else []))
        for a in node.names:
            self.aliases[a.asname or a.name] = f"{base}.{a.name}" if base else a.name
        self.generic_visit(node)

    def visit_ClassDef(self, node):
        self.stack.append(node.name)
        bases = [dotted(b) for b in node.bases]
        self.classes[self.scope()] = ([b for b in bases if b], set())
        self.generic_visit(node)
        self.stack.pop()

    def visit_FunctionDef(self, node):
        if self.stack and self.scope() in self.classes:
            self.classes[self.scope()][1].add(node.name)
        self.stack.append(node.name)
        self.functions.setdefault(self.scope(), set())
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        name = dotted(node.func)
        if name:
            owner = self.enclosing_function()
            target = self.functions.setdefault(owner, set()) if owner else self.calls_at_import
            target.add(name)
        self.generic_visit(node)

    def enclosing_function(self):
        # Calls inside nested functions count for the outermost named function too.
        for i in range(len(self.stack), 0, -1):
            q = ".".join(self.stack[:i])
            if q in self.functions:
                return q
        return None


def dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def resolve(scan, name, qualname):
    """Absolute dotted names a call `name` made in `qualname` may reach."""
    head, _, rest = name.partition(".")
    out = []
    if head == "self" and rest and "." in qualname:
        cls = qualname.rsplit(".", 1)[0]
        out.append(f"{scan.module}.{cls}.{rest}")
        for base in scan.classes.get(cls, ([], set()))[0]:
            out.append(absolute(scan, base) + "." + rest)
        return out
    if head in scan.aliases:
        origin = scan.aliases[head]
        out.append(origin + ("." + rest if rest else ""))
    elif f"{head}" in scan.functions or head in scan.classes:
        out.append(f"{scan.module}.{name}")
    else:
        out.append(name)  # builtins (eval, exec...) or unknown
    return out


def absolute(scan, name):
    head, _, rest = name.partition(".")
    if head in scan.aliases:
        return scan.aliases[head] + ("." + rest if rest else "")
    return f"{scan.module}.{name}"


def main():
    stdlib = sysconfig.get_paths()["stdlib"]
    scans = {}
    for module, path in modules(stdlib):
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), path)
        except (SyntaxError, ValueError):
            continue
        scan = ModuleScan(module)
        scan.is_package = path.endswith("__init__.py")
        scan.visit(tree)
        scans[module] = scan

    # Edges: absolute function path -> absolute callee paths.
    edges = {}
    for module, scan in scans.items():
        for q, calls in scan.functions.items():
            targets = set()
            for c in calls:
                targets.update(resolve(scan, c, q))
            edges[f"{module}.{q}"] = targets
    tainted = {}
    for f, targets in edges.items():
        for t in targets:
            if t in SINKS:
                tainted.setdefault(f, t)
    changed = True
    while changed:
        changed = False
        for f, targets in edges.items():
            if f in tainted:
                continue
            for t in targets:
                # A call of a class taints like its constructor.
                for cand in (t, t + ".__init__", t + ".__new__"):
                    if cand in tainted:
                        tainted[f] = tainted[cand]
                        changed = True
                        break
                if f in tainted:
                    break
    # Classes whose construction or state restoration is tainted.
    for module, scan in scans.items():
        for cls, (_, methods) in scan.classes.items():
            for m in methods & CONSTRUCTION:
                key = f"{module}.{cls}.{m}"
                if key in tainted:
                    tainted.setdefault(f"{module}.{cls}", tainted[key])
    if "--json" in sys.argv:
        json.dump(tainted, sys.stdout, indent=1, sort_keys=True)
    else:
        for path in sorted(tainted):
            print(f"{path}\t{tainted[path]}")


if __name__ == "__main__":
    main()
