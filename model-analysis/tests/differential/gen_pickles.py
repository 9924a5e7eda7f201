"""Generates pickles for the differential test of the pickle analyser, and CPython's
verdict on each (see oracle.py).

Deterministic from the seed. Every protocol 0-5 and every opcode appear, in:
- `pickle.dumps` of random objects, including globals (functions, classes) and Python 2
  names (protocols 0-2 write them with `fix_imports`);
- hand-built payloads: imports through GLOBAL, INST, STACK_GLOBAL (names from every
  string opcode, through the memo), called by REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST,
  BUILD; dotted attribute paths, `<locals>`, odd names;
- random opcode sequences with plausible and implausible arguments;
- text arguments in every syntax `int()`, C `strtol` and `float()` accept or reject;
- frames: first, nested, too short, too long, STOP inside;
- concatenations (with and without PROTO, legacy torch layout, trailing bytes), long
  harmless prefixes, truncations and byte mutations of all the above.

Lengths stay small or absurd: CPython allocates a BINBYTES or a memo slot before it
reads, and the test must not depend on how much memory the machine has.

Standard library only. Usage:
    python3 gen_pickles.py OUT_DIR [--count N] [--seed S]
writes OUT_DIR/NNNNN.pkl and OUT_DIR/oracle.jsonl (one line per file, in order).
"""

import argparse
import collections
import datetime
import decimal
import fractions
import json
import os
import pickle
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

OP = {name: getattr(pickle, name) for name in dir(pickle) if name.isupper() and isinstance(getattr(pickle, name), bytes)}
OPCODES = {  # the 68 opcodes of protocols 0-5 (pickle.py also defines aliases)
    name: code for name, code in OP.items()
    if len(code) == 1 and name not in ("TRUE", "FALSE", "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL")
}

MODULES = ["os", "posix", "builtins", "__builtin__", "collections", "subprocess", "sys", "torch._utils",
           "numpy.core.multiarray", "copy_reg", "copyreg", "exceptions", "itertools", "UserDict", "urllib",
           "numpy.testing._private.utils", "a", "", "x.y.z", "commands", "socket", "_socket", "pickle",
           "multiprocessing", "whichdb", "cPickle", "é", "mod with space"]
NAMES = ["system", "eval", "exec", "OrderedDict", "getattr", "_rebuild_tensor_v2", "_reconstruct", "xrange",
         "reduce", "ifilterfalse", "izip", "UserDict", "Popen", "os.system", "_sys.modules", "a.<locals>.b",
         "<locals>", "OrderedDict.__init__", "", "a..b", "IterableUserDict", "quote", "urlopen", "loads",
         "Connection", "fromfd", "_socketobject", "ZeroDivisionError", "whichdb", "é", "name with space", "x.y"]


def text_int(rng, value):
    """`value` written in one of the syntaxes INT accepts (C strtol or int(s, 0))."""
    forms = [str(value), f" {value}", f"{value} ", f"+{value}" if value >= 0 else str(value),
             f"0x{value:x}" if value >= 0 else str(value), f"0o{value:o}" if value >= 0 else str(value),
             f"0b{value:b}" if value >= 0 else str(value), "_".join(str(value)) if value > 9 else str(value),
             f"0{value:o}" if value > 0 else "0", f"\t{value}\x0b", f"{value}\r"]
    return rng.choice(forms)


def text_key(rng, value):
    """A memo key as GET/PUT write it, in one of the syntaxes int(s, 10) accepts, or
    sometimes one it rejects."""
    good = [str(value), f"  {value}", f"{value}\t", f"+{value}", f"00{value}", "_".join(str(value)) if value > 9 else str(value),
            f"\x0c{value}\r", f"0{value}"]
    bad = [f"0x{value:x}", f"{value}L", f"{value}__", f"_{value}", f"{value} 1", "", "-1", f"{value}.0", "9" * 30]
    return rng.choice(good if rng.random() < 0.85 else bad)


class Writer:
    """Emits opcodes and tracks which ones were used."""

    used = set()

    def __init__(self):
        self.out = bytearray()

    def op(self, name, arg=b""):
        Writer.used.add(name)
        self.out += OPCODES[name] + arg
        return self

    def raw(self, data):
        self.out += data
        return self

    def line_op(self, name, text):
        return self.op(name, text + b"\n")

    def bytes(self):
        return bytes(self.out)


def push_str(w, rng, text, proto_hint):
    """Pushes `text` as a str, with one of the string opcodes."""
    data = text.encode("utf-8", "surrogatepass")
    choices = ["SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"]
    kind = rng.choice(choices)
    if kind == "SHORT_BINUNICODE" and len(data) < 256:
        w.op(kind, bytes([len(data)]) + data)
    elif kind in ("BINUNICODE", "SHORT_BINUNICODE"):
        w.op("BINUNICODE", struct.pack("<I", len(data)) + data)
    elif kind == "BINUNICODE8":
        w.op(kind, struct.pack("<Q", len(data)) + data)
    elif kind == "UNICODE":
        esc = text.encode("raw_unicode_escape", "surrogatepass") if rng.random() < 0.8 else \
            "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in text).encode("utf-8", "surrogatepass")
        w.line_op(kind, esc.replace(b"\n", b"\\u000a"))
    elif kind == "STRING":
        quote = rng.choice([b"'", b'"'])
        body = b"".join(rng.choice([bytes([b]), b"\\x%02x" % b, b"\\%o" % b]) if 32 <= b < 127 and b not in b"\\'\"" else b"\\x%02x" % b
                        for b in data)
        w.line_op(kind, quote + body + quote)
    elif kind == "BINSTRING":
        w.op(kind, struct.pack("<I", len(data)) + data)
    else:
        if len(data) < 256:
            w.op(kind, bytes([len(data)]) + data)
        else:
            w.op("BINSTRING", struct.pack("<I", len(data)) + data)


def memo_roundtrip(w, rng, memo):
    """Stores the top of the stack in the memo and fetches it back, in one of the ways
    picklers do it (or odd ones)."""
    key = len(memo)
    style = rng.randrange(5)
    if style == 0:
        w.op("MEMOIZE")
    elif style == 1:
        key = rng.randrange(256)
        w.op("BINPUT", bytes([key]))
    elif style == 2:
        key = rng.randrange(70000)
        w.op("LONG_BINPUT", struct.pack("<I", key))
    else:
        key = rng.randrange(3000)
        w.line_op("PUT", text_key(rng, key).encode())
    memo.add(key)
    w.op("POP")
    style = rng.randrange(3)
    if style == 0 and key < 256:
        w.op("BINGET", bytes([key]))
    elif style == 1:
        w.op("LONG_BINGET", struct.pack("<I", key))
    else:
        w.line_op("GET", text_key(rng, key).encode())


def pick_name(rng):
    module = rng.choice(MODULES)
    name = rng.choice(NAMES)
    if rng.random() < 0.05:
        name = "\ud800" + name  # a lone surrogate: only BINUNICODE and UNICODE carry it
    return module, name


def push_import(w, rng, memo, proto):
    module, name = pick_name(rng)
    style = rng.randrange(3)
    if style == 0 and "\ud800" not in name and "\n" not in name:
        try:
            w.op("GLOBAL", module.encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n")
            return
        except UnicodeEncodeError:
            pass
    push_str(w, rng, module, proto)
    if rng.random() < 0.4:
        memo_roundtrip(w, rng, memo)
    push_str(w, rng, name, proto)
    if rng.random() < 0.4:
        memo_roundtrip(w, rng, memo)
    w.op("STACK_GLOBAL")


def push_args(w, rng, proto, memo):
    n = rng.randrange(4)
    if n == 0:
        w.op("EMPTY_TUPLE")
        return
    w.op("MARK")
    for _ in range(n):
        push_scalar(w, rng, proto)
    w.op("TUPLE")


def push_scalar(w, rng, proto):
    k = rng.randrange(14)
    if k == 0:
        w.op("NONE")
    elif k == 1:
        w.op("BININT1", bytes([rng.randrange(256)]))
    elif k == 2:
        w.op("BININT", struct.pack("<i", rng.randrange(-2**31, 2**31)))
    elif k == 3:
        w.op("BININT2", struct.pack("<H", rng.randrange(65536)))
    elif k == 4:
        w.line_op("INT", text_int(rng, rng.choice([0, 1, 7, 8, 10, 255, 2**40, -3])).encode())
    elif k == 5:
        w.line_op("LONG", (text_int(rng, rng.choice([0, 1, 2**70, 12])) + rng.choice(["", "L"])).encode())
    elif k == 6:
        w.line_op("FLOAT", rng.choice([b"1.5", b"-0.0", b"inf", b"1e10", b".5", b"nan", b"3."]))
    elif k == 7:
        w.op("BINFLOAT", struct.pack(">d", rng.random()))
    elif k == 8:
        n = rng.randrange(9)
        w.op("LONG1", bytes([n]) + bytes(rng.randrange(256) for _ in range(n)))
    elif k == 9:
        n = rng.randrange(5)
        w.op("LONG4", struct.pack("<i", n) + bytes(rng.randrange(256) for _ in range(n)))
    elif k == 10:
        w.op(rng.choice(["NEWTRUE", "NEWFALSE"]))
    elif k == 11:
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
        kind = rng.choice(["SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"])
        size = {"SHORT_BINBYTES": "<B", "BINBYTES": "<I", "BINBYTES8": "<Q", "BYTEARRAY8": "<Q"}[kind]
        w.op(kind, struct.pack(size, len(data)) + data)
    else:
        push_str(w, rng, rng.choice(["id", "ls", "é", "x" * 300, "a\\u0041", "\\\\u0041"]), proto)


def payload(rng, proto):
    """A stream that imports and calls things, the way payloads and real objects do."""
    w = Writer()
    memo = set()
    if proto >= 2:
        w.op("PROTO", bytes([proto]))
    for _ in range(rng.randrange(1, 4)):
        style = rng.randrange(8)
        if style == 0:  # REDUCE
            push_import(w, rng, memo, proto)
            push_args(w, rng, proto, memo)
            w.op("REDUCE")
        elif style == 1:  # NEWOBJ + BUILD
            push_import(w, rng, memo, proto)
            push_args(w, rng, proto, memo)
            w.op("NEWOBJ")
            w.op(rng.choice(["EMPTY_DICT", "NONE"]))
            w.op("BUILD")
        elif style == 2:  # NEWOBJ_EX
            push_import(w, rng, memo, proto)
            push_args(w, rng, proto, memo)
            w.op("EMPTY_DICT")
            if rng.random() < 0.5:
                push_str(w, rng, "k", proto)
                w.op("NONE")
                w.op("SETITEM")
            w.op("NEWOBJ_EX")
        elif style == 3:  # INST
            module, name = pick_name(rng)
            w.op("MARK")
            push_scalar(w, rng, proto)
            try:
                w.op("INST", module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n")
            except UnicodeEncodeError:
                w.op("INST", b"os\nsystem\n")
        elif style == 4:  # OBJ
            w.op("MARK")
            push_import(w, rng, memo, proto)
            push_scalar(w, rng, proto)
            w.op("OBJ")
        elif style == 5:  # imported, put in a list, not called
            w.op("EMPTY_LIST")
            push_import(w, rng, memo, proto)
            w.op("APPEND")
        elif style == 6:  # setitems on an import
            push_import(w, rng, memo, proto)
            w.op("MARK")
            push_str(w, rng, "key", proto)
            push_scalar(w, rng, proto)
            w.op("SETITEMS")
        else:  # a call result called again
            push_import(w, rng, memo, proto)
            push_args(w, rng, proto, memo)
            w.op("REDUCE")
            push_args(w, rng, proto, memo)
            w.op("REDUCE")
        if rng.random() < 0.7:
            w.op("POP")
    if not w.out or w.out[-1:] == OPCODES["POP"] or rng.random() < 0.5:
        w.op("NONE")
    w.op("STOP")
    return w.bytes()


class Obj:
    pass


def random_object(rng, depth=0):
    k = rng.randrange(16 if depth < 3 else 9)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.randrange(-2**70, 2**70) if rng.random() < 0.2 else rng.randrange(-300, 300)
    if k == 3:
        return rng.random() * 1e6
    if k == 4:
        return "".join(rng.choice("abcé\u20ac\n\\'\"x") for _ in range(rng.randrange(12)))
    if k == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
    if k == 6:
        return rng.choice([os.system, len, collections.OrderedDict, range, datetime.date, pickle.loads,
                           collections.Counter, decimal.Decimal, fractions.Fraction, reduce_ref(), zip, map,
                           str.upper, dict.fromkeys, sys.exit, KeyError, struct.pack])
    if k == 7:
        return bytearray(rng.randrange(256) for _ in range(rng.randrange(5)))
    if k == 8:
        return rng.choice([datetime.datetime(2020, 1, 2, 3, 4, 5), decimal.Decimal("1.5"), fractions.Fraction(1, 3),
                           collections.Counter("abca"), range(3), slice(1, 2), complex(1, 2)])
    if k == 9:
        return [random_object(rng, depth + 1) for _ in range(rng.randrange(4))]
    if k == 10:
        return tuple(random_object(rng, depth + 1) for _ in range(rng.randrange(4)))
    if k == 11:
        return {str(i): random_object(rng, depth + 1) for i in range(rng.randrange(4))}
    if k == 12:
        return set(rng.randrange(100) for _ in range(rng.randrange(4)))
    if k == 13:
        return frozenset(rng.randrange(100) for _ in range(rng.randrange(4)))
    if k == 14:
        d = collections.OrderedDict()
        for i in range(rng.randrange(3)):
            d[i] = random_object(rng, depth + 1)
        return d
    shared = [1, 2]
    return [shared, shared, {"self": shared}]


def reduce_ref():
    import functools
    return functools.reduce


def dumps_stream(rng, proto):
    obj = random_object(rng)
    try:
        return pickle.dumps(obj, protocol=proto, fix_imports=rng.random() < 0.8)
    except Exception:
        return pickle.dumps(None, protocol=proto)


def random_opcodes(rng):
    """Random opcode sequences, arguments plausible or not."""
    w = Writer()
    names = list(OPCODES)
    for _ in range(rng.randrange(1, 25)):
        name = rng.choice(names)
        arg = b""
        if name in ("INT", "LONG"):
            arg = text_int(rng, rng.choice([0, 1, 5, 300])).encode() + (b"L" if name == "LONG" and rng.random() < 0.3 else b"") + b"\n"
        elif name == "FLOAT":
            arg = rng.choice([b"1.5", b" 1", b"1_0", b"inf", b"1e999", b"x"]) + b"\n"
        elif name in ("GET", "PUT"):
            arg = text_key(rng, rng.randrange(4)).encode() + b"\n"
        elif name in ("STRING",):
            arg = rng.choice([b"'os'", b"\"system\"", b"'\\x6fs'", b"'unterminated", b"os", b"'\\q'", b"'\xc3\xa9'", b"'\\x4'"]) + b"\n"
        elif name == "UNICODE":
            arg = rng.choice([b"os", b"system", b"\\u0041", b"\\u00", b"\xe9", b"\\\\u0041"]) + b"\n"
        elif name in ("GLOBAL", "INST"):
            m, n = pick_name(rng)
            arg = m.encode("utf-8", "surrogatepass") + b"\n" + n.encode("utf-8", "surrogatepass") + b"\n"
        elif name == "PERSID":
            arg = rng.choice([b"0", b"storage", b"\xff"]) + b"\n"
        elif name in ("BINGET", "BINPUT"):
            arg = bytes([rng.randrange(4)])
        elif name in ("LONG_BINGET", "LONG_BINPUT"):
            arg = struct.pack("<I", rng.randrange(4))
        elif name == "BININT1":
            arg = bytes([rng.randrange(256)])
        elif name == "BININT2":
            arg = struct.pack("<H", rng.randrange(65536))
        elif name == "BININT":
            arg = struct.pack("<i", rng.randrange(-5, 5))
        elif name == "BINFLOAT":
            arg = struct.pack(">d", 1.5)
        elif name == "PROTO":
            arg = bytes([rng.choice([0, 1, 2, 3, 4, 5, 6, 255])])
        elif name == "FRAME":
            arg = struct.pack("<Q", rng.choice([0, 1, 5, 20, 1000, 2**63 + 5]))
        elif name in ("EXT1",):
            arg = bytes([rng.randrange(3)])
        elif name == "EXT2":
            arg = struct.pack("<H", rng.randrange(3))
        elif name == "EXT4":
            arg = struct.pack("<i", rng.choice([-1, 0, 1, 2]))
        elif name in ("SHORT_BINSTRING", "SHORT_BINUNICODE", "SHORT_BINBYTES"):
            data = rng.choice([b"os", b"system", b"\xff\xfe", b"", b"eval"])
            arg = bytes([len(data) + rng.choice([0, 0, 0, 3])]) + data
        elif name in ("BINSTRING", "BINUNICODE", "BINBYTES"):
            data = rng.choice([b"os", b"builtins", b"\xed\xa0\x80", b"exec"])
            arg = struct.pack("<I", len(data) + rng.choice([0, 0, 0, 1])) + data
        elif name in ("BINUNICODE8", "BINBYTES8", "BYTEARRAY8"):
            data = rng.choice([b"os", b"system", b"ab"])
            arg = struct.pack("<Q", rng.choice([len(data), len(data), 2**62 + 1])) + data
        elif name == "LONG1":
            arg = bytes([2]) + b"\x01\x02"
        elif name == "LONG4":
            arg = struct.pack("<i", rng.choice([1, -1, 100])) + b"\x05"
        w.op(name, arg)
    if rng.random() < 0.7:
        w.op("STOP")
    return w.bytes()


def numbers_stream(rng):
    """Protocol 0 text numbers in every syntax, then an import."""
    w = Writer()
    w.op("MARK")
    for _ in range(rng.randrange(1, 6)):
        k = rng.randrange(3)
        if k == 0:
            w.line_op("INT", rng.choice([text_int(rng, rng.randrange(-20, 3000)), "010", "08", "0x", "1__0", "-0", "00",
                                         "01", "\x001", "1" * 4301, "0" * 4400, "0x" + "f" * 40, "99999999999999999999"]).encode())
        elif k == 1:
            w.line_op("LONG", rng.choice([text_int(rng, rng.randrange(0, 3000)) + "L", "12L", "L", "010", "0x10L", " 5 L",
                                          "1_0L", "1" * 4301 + "L", "1" * 4300]).encode())
        else:
            w.line_op("FLOAT", rng.choice(["1.5", " 1.5", "1_0", "inf", "-nan", "1e999", ".", "5.", "1e", "0x1p3",
                                           "Infinity", "1.5\x00junk", "1e-999", "nan(1)", "infx", "1.5\r"]).encode())
    w.op("TUPLE")
    w.op("POP")
    w.raw(b"cos\nsystem\n")
    w.op("STOP")
    return w.bytes()


def framed(rng, body, proto=4):
    """`body` inside frames: well formed, or with lengths that lie."""
    w = Writer()
    style = rng.randrange(7)
    if style == 0:  # FRAME first, then PROTO
        w.op("FRAME", struct.pack("<Q", len(body) + 2)).op("PROTO", bytes([proto])).raw(body)
    elif style == 1:
        w.op("PROTO", bytes([proto])).op("FRAME", struct.pack("<Q", len(body))).raw(body)
    elif style == 2:  # too short: the rest of an argument is dropped
        w.op("PROTO", bytes([proto])).op("FRAME", struct.pack("<Q", max(0, len(body) - rng.randrange(1, 6)))).raw(body)
    elif style == 3:  # too long
        w.op("PROTO", bytes([proto])).op("FRAME", struct.pack("<Q", len(body) + rng.randrange(1, 40))).raw(body)
    elif style == 4:  # nested frame
        half = len(body) // 2
        w.op("PROTO", bytes([proto])).op("FRAME", struct.pack("<Q", len(body) + 9)).raw(body[:half])
        w.op("FRAME", struct.pack("<Q", len(body) - half)).raw(body[half:])
    elif style == 5:  # STOP inside a frame: the next stream starts after it
        extra = payload(rng, 0)
        w.op("PROTO", bytes([proto])).op("FRAME", struct.pack("<Q", len(body) + len(extra))).raw(body).raw(extra)
        w.raw(payload(rng, 2))
    else:
        w.op("FRAME", struct.pack("<Q", 0)).raw(body)
    return w.bytes()


def long_prefix(rng):
    """A long harmless opening, then a payload."""
    w = Writer()
    style = rng.randrange(4)
    if style == 0:
        for _ in range(rng.randrange(500, 3000)):
            w.op("NONE").op("POP")
    elif style == 1:
        w.op("MARK")
        for i in range(rng.randrange(300, 2000)):
            w.line_op("INT", str(i).encode())
        w.op("LIST").op("POP")
    elif style == 2:
        w.op("BINUNICODE", struct.pack("<I", 9000) + b"a" * 9000).op("POP")
    else:
        w.op("PROTO", b"\x04").op("BINBYTES8", struct.pack("<Q", 20000) + b"\0" * 20000).op("POP")
    body = payload(rng, rng.choice([0, 1]))
    return w.bytes() + body


def legacy_torch(rng):
    magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."
    parts = [magic, b"\x80\x02M\xe9\x03.", b"\x80\x02}q\x00.", payload(rng, 2), b"\x80\x02]q\x00X\x01\x00\x00\x000a."]
    storage = struct.pack("<q", rng.randrange(1, 300)) + bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    return b"".join(parts) + storage


def typed_program(rng):
    """Random programs over typed values: containers filled, indexed, built and called
    the right and the wrong way. A probe import after each step shows exactly where a
    stream stops."""
    w = Writer()
    if rng.random() < 0.5:
        w.op("PROTO", bytes([rng.randrange(2, 6)]))
    pushes = [
        lambda: w.op("NONE"), lambda: w.op("BININT1", bytes([rng.choice([0, 1, 2, 255])])),
        lambda: w.op("BININT", struct.pack("<i", rng.choice([-1, -3, 0, 300]))), lambda: w.op("EMPTY_LIST"),
        lambda: w.op("EMPTY_DICT"), lambda: w.op("EMPTY_SET"), lambda: w.op("EMPTY_TUPLE"),
        lambda: w.op("SHORT_BINUNICODE", b"\x01k"), lambda: w.op("SHORT_BINUNICODE", b"\x00"),
        lambda: w.op("SHORT_BINBYTES", b"\x02ab"), lambda: w.op("BYTEARRAY8", struct.pack("<Q", 2) + b"ab"),
        lambda: w.op("BYTEARRAY8", struct.pack("<Q", 0)), lambda: w.op(rng.choice(["NEWTRUE", "NEWFALSE"])),
        lambda: w.op("GLOBAL", b"stub\nobj\n"), lambda: w.op("FLOAT", b"0.0\n"),
        lambda: (w.op("MARK"), w.op("EMPTY_LIST"), w.op("LIST")), lambda: w.op("MARK"),
        lambda: (w.op("NONE"), w.op("EMPTY_DICT"), w.op("TUPLE2")),
        lambda: (w.op("NONE"), w.op("EMPTY_DICT"), w.op("SHORT_BINUNICODE", b"\x01a"), w.op("NONE"),
                 w.op("SETITEM"), w.op("TUPLE2")),
        lambda: (w.op("BININT1", b"\x00"), w.op("NONE"), w.op("TUPLE2")),
        lambda: (w.op("GLOBAL", b"stub\nfn\n"), w.op("EMPTY_TUPLE"), w.op("REDUCE")),
    ]
    ops = ["APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
           "FROZENSET", "DICT", "LIST", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "READONLY_BUFFER", "DUP", "POP",
           "POP_MARK", "MEMOIZE", "STACK_GLOBAL", "BINPERSID", "STOP"]
    for i in range(rng.randrange(3, 25)):
        if rng.random() < 0.55:
            rng.choice(pushes)()
        else:
            name = rng.choice(ops)
            w.op(name)
            if name == "STOP":
                break
        if rng.random() < 0.4:
            w.op("GLOBAL", b"probe\np%d\n" % i).op("POP")
    if w.out[-1:] != OPCODES["STOP"]:
        w.op("NONE").op("STOP")
    return w.bytes()


def joblib_like(rng):
    """A joblib.dump shape: a NumpyArrayWrapper, then the array's bytes inside the
    stream (which pickle.load reads as opcodes), or a nested pickle for objects."""
    w = Writer()
    w.op("PROTO", b"\x04")
    w.op("SHORT_BINUNICODE", b"\x13joblib.numpy_pickle").op("SHORT_BINUNICODE", b"\x11NumpyArrayWrapper")
    w.op("STACK_GLOBAL").op("EMPTY_TUPLE").op("NEWOBJ").op("EMPTY_DICT").op("MARK")
    w.op("SHORT_BINUNICODE", b"\x05shape")
    dims = [rng.randrange(1, 4) for _ in range(rng.randrange(3))]
    w.op("MARK")
    for d in dims:
        w.op("BININT1", bytes([d]))
    w.op("TUPLE")
    objects = rng.random() < 0.25
    code = b"O8" if objects else rng.choice([b"f4", b"i8", b"u1", b"f8"])
    w.op("SHORT_BINUNICODE", b"\x05dtype").op("SHORT_BINUNICODE", b"\x05numpy").op("SHORT_BINUNICODE", b"\x05dtype")
    w.op("STACK_GLOBAL").op("SHORT_BINUNICODE", bytes([len(code)]) + code).op("NEWFALSE").op("NEWTRUE").op("TUPLE3")
    w.op("REDUCE")
    aligned = rng.random() < 0.5
    if aligned:
        w.op("SHORT_BINUNICODE", b"\x1bnumpy_array_alignment_bytes").op("BININT1", b"\x10")
    w.op("SETITEMS").op("BUILD")
    count = 1
    for d in dims:
        count *= d
    if objects:
        w.raw(payload(rng, 2))
    else:
        if aligned:
            pad = rng.randrange(16)
            w.raw(bytes([pad]) + b"\xff" * pad)
        size = count * int(code[1:])
        style = rng.randrange(3)
        if style == 0:
            data = bytes(rng.randrange(256) for _ in range(size))
        elif style == 1:
            data = (payload(rng, 0) + b"N" * size)[:size]
        else:
            data = b"\x00" * size
        w.raw(data)
    if rng.random() < 0.5:
        w.op("POP").raw(payload(rng, 0))
    else:
        w.op("STOP")
    return w.bytes()


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        if not data:
            break
        k = rng.randrange(5)
        i = rng.randrange(len(data))
        if k == 0:
            del data[i:]
        elif k == 1:
            data[i] = rng.randrange(256)
        elif k == 2:
            data.insert(i, rng.choice(list(OPCODES.values()))[0])
        elif k == 3:
            del data[i]
        else:
            j = min(len(data), i + rng.randrange(1, 8))
            data[i:i] = data[i:j]
    return bytes(data)


def sample(rng, index):
    proto = index % 6
    kind = index % 13
    if kind == 12:
        return joblib_like(rng)
    if kind >= 10:
        return typed_program(rng)
    if kind == 0:
        return dumps_stream(rng, proto)
    if kind == 1:
        return payload(rng, proto)
    if kind == 2:
        return random_opcodes(rng)
    if kind == 3:
        return numbers_stream(rng)
    if kind == 4:
        return framed(rng, payload(rng, 0)[:] if rng.random() < 0.5 else dumps_stream(rng, 4)[11:], proto=4 + (index % 2))
    if kind == 5:
        streams = [rng.choice([payload, lambda r, p: dumps_stream(r, p)])(rng, rng.randrange(6)) for _ in range(rng.randrange(2, 5))]
        tail = bytes(rng.randrange(256) for _ in range(rng.randrange(3)))
        return b"".join(streams) + tail
    if kind == 6:
        return long_prefix(rng)
    if kind == 7:
        return legacy_torch(rng)
    if kind == 8:
        return mutate(rng, payload(rng, proto) if rng.random() < 0.5 else dumps_stream(rng, proto))
    return mutate(rng, sample(rng, index + 1 + rng.randrange(7)))


def cap_memory():
    """Allocations above 2 GiB fail at once (MemoryError) instead of depending on the
    machine: a mutated memo index makes CPython allocate `index * 16` bytes."""
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, ValueError, OSError):
        pass


def main():
    cap_memory()
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    with open(os.path.join(args.out, "oracle.jsonl"), "w") as out:
        for i in range(args.count):
            data = sample(rng, i)
            name = f"{i:05}.pkl"
            with open(os.path.join(args.out, name), "wb") as f:
                f.write(data)
            result = oracle.oracle(data)
            result["file"] = name
            out.write(json.dumps(result) + "\n")
    missing = sorted(set(OPCODES) - Writer.used)
    print(json.dumps({"files": args.count, "opcodes_used": len(Writer.used), "opcodes_missing": missing}))


if __name__ == "__main__":
    main()
