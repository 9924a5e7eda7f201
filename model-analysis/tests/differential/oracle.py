"""CPython as the oracle for the pickle analyser: which imports does `load()` make?

`pickle.Unpickler(f).load()` is called again and again on the file, as torch's legacy
loader and any reader of concatenated pickles do, until the end of the file or the
first error. `find_class` runs CPython's own implementation (its Python 2 renaming
below protocol 3, its attribute-path rules from protocol 4), but with the import
system replaced, for the duration of the call, by a recorder: it notes the module
CPython asks for and hands back a stand-in. Nothing is imported or executed; every
object the pickle obtains is the stand-in `Stub`, which accepts any use (calls, items,
attributes, state), so the stream goes on wherever a real object could.

The file is read through `io.BytesIO` (no `peek`): the C unpickler then reads exactly
what each opcode needs, except `FRAME`, which it reads whole. `persistent_load` returns
the stand-in, as torch's loader returns a storage.

Standard library only. Usage:
    python3 oracle.py FILE...      one JSON object per file on stdout
"""

import builtins
import io
import json
import pickle
import sys


class _StubMeta(type):
    def __getattribute__(cls, name):
        return Stub

    def __call__(cls, *args, **kwargs):
        return Stub

    def __setitem__(cls, key, value):
        pass


class Stub(metaclass=_StubMeta):
    # Only makes CPython route NEWOBJ through `__new__`, which the metaclass answers.
    def __new__(cls, *args, **kwargs):
        return Stub


class _FakeModule:
    def __init__(self, seen):
        object.__setattr__(self, "_seen", seen)

    def __getattribute__(self, name):
        object.__getattribute__(self, "_seen").append(name)
        return Stub


_MISSING = object()


class Recorder(pickle.Unpickler):
    def __init__(self, file, record):
        super().__init__(file)
        self.record = record

    def persistent_load(self, pid):
        return Stub

    def find_class(self, module, name):
        imported = []
        seen = []
        replaced = []

        def fake_import(mod, globals=None, locals=None, fromlist=(), level=0):
            imported.append(mod)
            fake = _FakeModule(seen)
            replaced.append((mod, sys.modules.get(mod, _MISSING)))
            sys.modules[mod] = fake
            return fake

        real_import = builtins.__import__
        builtins.__import__ = fake_import
        try:
            return super().find_class(module, name)
        finally:
            builtins.__import__ = real_import
            for mod, previous in reversed(replaced):
                if previous is _MISSING:
                    sys.modules.pop(mod, None)
                else:
                    sys.modules[mod] = previous
            self.record.append(_names(module, name, imported, seen))


def _names(module, name, imported, seen):
    """What find_class received after CPython's renaming: the module it imported, and
    the name it looked up (from protocol 4 a dotted name is looked up part by part, and
    is never renamed)."""
    mapped_module = imported[0] if imported else module
    dotted_walk = "." in name and seen and seen[0] == name.split(".")[0] and seen[0] != name
    mapped_name = seen[0] if seen and not dotted_walk else name
    return (mapped_module, mapped_name)


def render(text):
    """Names as the analyser reports them: UTF-8, lone surrogates replaced."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def oracle(data):
    f = io.BytesIO(data)
    record = []
    complete = 0
    error = None
    last_end = 0
    while f.tell() < len(data):
        try:
            Recorder(f, record).load()
        except Exception as e:  # the stream ends here, whatever the reason
            error = f"{type(e).__name__}: {e}"[:200]
            break
        complete += 1
        last_end = f.tell()
    return {
        "imports": sorted({f"{render(m)}\t{render(n)}" for m, n in record}),
        "complete": complete,
        "trailing": len(data) - last_end,
        "error": error,
    }


def main(paths):
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, ValueError, OSError):
        pass
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        result = oracle(data)
        result["file"] = path
        print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
