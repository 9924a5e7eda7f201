//! A pickle opcode writer: each method appends one opcode with its argument, so tests
//! spell out exactly the stream a payload uses.

#[derive(Default, Clone)]
pub struct Pickle {
    pub bytes: Vec<u8>,
}

impl Pickle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn proto(mut self, p: u8) -> Self {
        self.bytes.extend_from_slice(&[0x80, p]);
        self
    }

    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    pub fn op(mut self, op: u8) -> Self {
        self.bytes.push(op);
        self
    }

    /// FRAME around everything `body` writes.
    pub fn framed(self, body: &Pickle) -> Self {
        self.frame(body.bytes.len() as u64).raw(&body.bytes)
    }

    pub fn frame(mut self, len: u64) -> Self {
        self.bytes.push(0x95);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self
    }

    /// GLOBAL `module\nname\n`.
    pub fn global(mut self, module: &str, name: &str) -> Self {
        self.bytes.push(b'c');
        self.bytes.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }

    /// INST `module\nname\n` (pops to MARK).
    pub fn inst(mut self, module: &str, name: &str) -> Self {
        self.bytes.push(b'i');
        self.bytes.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }

    pub fn short_unicode(mut self, s: &str) -> Self {
        self.bytes.push(0x8c);
        self.bytes.push(u8::try_from(s.len()).expect("short string"));
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }

    pub fn unicode(mut self, s: &str) -> Self {
        self.bytes.push(b'X');
        self.bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }

    pub fn unicode8(mut self, s: &str) -> Self {
        self.bytes.push(0x8d);
        self.bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }

    /// Protocol 0 STRING with a quoted repr.
    pub fn string(mut self, quoted: &str) -> Self {
        self.bytes.push(b'S');
        self.bytes.extend_from_slice(quoted.as_bytes());
        self.bytes.push(b'\n');
        self
    }

    pub fn bytes8(mut self, payload: &[u8]) -> Self {
        self.bytes.push(0x8e);
        self.bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(payload);
        self
    }

    pub fn binint1(mut self, v: u8) -> Self {
        self.bytes.extend_from_slice(&[b'K', v]);
        self
    }

    pub fn memoize(self) -> Self {
        self.op(0x94)
    }

    pub fn binput(mut self, i: u8) -> Self {
        self.bytes.extend_from_slice(&[b'q', i]);
        self
    }

    pub fn long_binput(mut self, i: u32) -> Self {
        self.bytes.push(b'r');
        self.bytes.extend_from_slice(&i.to_le_bytes());
        self
    }

    pub fn binget(mut self, i: u8) -> Self {
        self.bytes.extend_from_slice(&[b'h', i]);
        self
    }

    pub fn long_binget(mut self, i: u32) -> Self {
        self.bytes.push(b'j');
        self.bytes.extend_from_slice(&i.to_le_bytes());
        self
    }

    pub fn mark(self) -> Self {
        self.op(b'(')
    }

    pub fn pop(self) -> Self {
        self.op(b'0')
    }

    pub fn tuple(self) -> Self {
        self.op(b't')
    }

    pub fn tuple1(self) -> Self {
        self.op(0x85)
    }

    pub fn empty_tuple(self) -> Self {
        self.op(b')')
    }

    pub fn empty_dict(self) -> Self {
        self.op(b'}')
    }

    pub fn stack_global(self) -> Self {
        self.op(0x93)
    }

    pub fn reduce(self) -> Self {
        self.op(b'R')
    }

    pub fn build(self) -> Self {
        self.op(b'b')
    }

    pub fn newobj(self) -> Self {
        self.op(0x81)
    }

    pub fn none(self) -> Self {
        self.op(b'N')
    }

    pub fn stop(self) -> Self {
        self.op(b'.')
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// `callable(arg)` through STACK_GLOBAL, protocol 4: the usual shape of a payload.
pub fn stack_global_call(module: &str, name: &str, arg: &str) -> Vec<u8> {
    Pickle::new()
        .proto(4)
        .short_unicode(module)
        .memoize()
        .short_unicode(name)
        .memoize()
        .stack_global()
        .memoize()
        .short_unicode(arg)
        .memoize()
        .tuple1()
        .memoize()
        .reduce()
        .memoize()
        .stop()
        .finish()
}

/// A state_dict-like pickle of one tensor, as torch writes `data.pkl` (protocol 2,
/// persistent id for the storage).
pub fn torch_state_dict() -> Vec<u8> {
    Pickle::new()
        .proto(2)
        .global("collections", "OrderedDict")
        .binput(0)
        .empty_tuple()
        .reduce()
        .binput(1)
        .mark()
        .unicode("weight")
        .binput(2)
        .global("torch._utils", "_rebuild_tensor_v2")
        .binput(3)
        .mark()
        .mark()
        .unicode("storage")
        .binput(4)
        .global("torch", "FloatStorage")
        .binput(5)
        .unicode("0")
        .unicode("cpu")
        .binint1(4)
        .tuple()
        .op(b'Q') // BINPERSID
        .binint1(0)
        .binint1(2)
        .binint1(2)
        .op(0x86) // TUPLE2
        .binint1(2)
        .binint1(1)
        .op(0x86)
        .op(0x89) // NEWFALSE
        .global("collections", "OrderedDict")
        .empty_tuple()
        .reduce()
        .tuple()
        .reduce()
        .binput(6)
        .op(b'u') // SETITEMS
        .stop()
        .finish()
}

/// A tensor as `torch.save` writes it: `_rebuild_tensor_v2(storage, offset, size,
/// stride, requires_grad, hooks)`, the storage a persistent id
/// `('storage', torch.<kind>Storage, key, 'cpu', numel)`.
pub fn torch_tensor(p: Pickle, kind: &str, key: &str) -> Pickle {
    p.global("torch._utils", "_rebuild_tensor_v2")
        .mark()
        .mark()
        .unicode("storage")
        .global("torch", &format!("{kind}Storage"))
        .unicode(key)
        .unicode("cpu")
        .binint1(4)
        .tuple()
        .op(b'Q') // BINPERSID
        .binint1(0)
        .binint1(2)
        .binint1(2)
        .op(0x86)
        .binint1(2)
        .binint1(1)
        .op(0x86)
        .op(0x89) // NEWFALSE
        .global("collections", "OrderedDict")
        .empty_tuple()
        .reduce()
        .tuple()
        .reduce()
}

/// A training checkpoint as `torch.save({...})` writes it (protocol 2): a state dict
/// with `_metadata` (set by BUILD), a parameter, sizes, a device and a dtype.
pub fn torch_checkpoint() -> Vec<u8> {
    let p = Pickle::new().proto(2).empty_dict().binput(0).mark().unicode("state_dict");
    // OrderedDict(weight=..., bias=...) with _metadata.
    let p = p.global("collections", "OrderedDict").empty_tuple().reduce().binput(1).mark().unicode("weight");
    let p = torch_tensor(p, "Float", "0").unicode("bias");
    let p = torch_tensor(p, "Half", "1").op(b'u');
    let p = p
        .empty_dict()
        .unicode("_metadata")
        .global("collections", "OrderedDict")
        .empty_tuple()
        .reduce()
        .unicode("")
        .empty_dict()
        .unicode("version")
        .binint1(1)
        .op(b's')
        .op(b's')
        .op(b's')
        .build();
    // A parameter: _rebuild_parameter(tensor, requires_grad, hooks).
    let p = p.unicode("param").global("torch._utils", "_rebuild_parameter").mark();
    let p = torch_tensor(p, "Float", "2")
        .op(0x88)
        .global("collections", "OrderedDict")
        .empty_tuple()
        .reduce()
        .tuple()
        .reduce();
    // torch.Size((2, 2)), torch.device('cpu'), torch.float16, an epoch number.
    p.unicode("size")
        .global("torch", "Size")
        .binint1(2)
        .binint1(2)
        .op(0x86)
        .tuple1()
        .reduce()
        .unicode("device")
        .global("torch", "device")
        .unicode("cpu")
        .tuple1()
        .reduce()
        .unicode("dtype")
        .global("torch", "float16")
        .unicode("epoch")
        .binint1(3)
        .op(b'u')
        .stop()
        .finish()
}
