//! A tiny GGUF writer (v1-v3) for tests: KV pairs and tensor infos, data section
//! optional.

pub enum Value {
    U8(u8),
    U32(u32),
    U64(u64),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    /// Array of strings.
    Strs(Vec<String>),
    /// Array of u32.
    U32s(Vec<u32>),
}

pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

pub struct Gguf {
    pub version: u32,
    pub kvs: Vec<(String, Value)>,
    pub tensors: Vec<Tensor>,
    /// Overrides of the header counts, for lying files.
    pub tensor_count: Option<u64>,
    pub kv_count: Option<u64>,
}

impl Gguf {
    pub fn new(version: u32) -> Self {
        Self { version, kvs: Vec::new(), tensors: Vec::new(), tensor_count: None, kv_count: None }
    }

    pub fn kv(mut self, key: &str, value: Value) -> Self {
        self.kvs.push((key.to_owned(), value));
        self
    }

    pub fn str(self, key: &str, value: &str) -> Self {
        self.kv(key, Value::Str(value.to_owned()))
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Self {
        self.tensors.push(Tensor { name: name.to_owned(), dims: dims.to_vec(), ggml_type, offset });
        self
    }

    fn count(&self, out: &mut Vec<u8>, n: u64) {
        if self.version == 1 {
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        } else {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn string(&self, out: &mut Vec<u8>, s: &str) {
        self.count(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    /// The header (magic to the end of the tensor infos), unpadded.
    pub fn header(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        self.count(&mut out, self.tensor_count.unwrap_or(self.tensors.len() as u64));
        self.count(&mut out, self.kv_count.unwrap_or(self.kvs.len() as u64));
        for (key, value) in &self.kvs {
            self.string(&mut out, key);
            match value {
                Value::U8(v) => {
                    out.extend_from_slice(&0u32.to_le_bytes());
                    out.push(*v);
                }
                Value::U32(v) => {
                    out.extend_from_slice(&4u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Value::I32(v) => {
                    out.extend_from_slice(&5u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Value::F32(v) => {
                    out.extend_from_slice(&6u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Value::Bool(v) => {
                    out.extend_from_slice(&7u32.to_le_bytes());
                    out.push(u8::from(*v));
                }
                Value::Str(s) => {
                    out.extend_from_slice(&8u32.to_le_bytes());
                    self.string(&mut out, s);
                }
                Value::U64(v) => {
                    out.extend_from_slice(&10u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Value::Strs(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&8u32.to_le_bytes());
                    self.count(&mut out, items.len() as u64);
                    for s in items {
                        self.string(&mut out, s);
                    }
                }
                Value::U32s(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&4u32.to_le_bytes());
                    self.count(&mut out, items.len() as u64);
                    for v in items {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        for t in &self.tensors {
            self.string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                self.count(&mut out, d);
            }
            out.extend_from_slice(&t.ggml_type.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out
    }

    /// Header, padding to 32 bytes, and `data_len` zero bytes of tensor data.
    pub fn build(&self, data_len: usize) -> Vec<u8> {
        let mut out = self.header();
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.resize(out.len() + data_len, 0);
        out
    }
}
