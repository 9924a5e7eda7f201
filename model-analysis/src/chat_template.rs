//! Risk scoring of Jinja chat templates (`tokenizer.chat_template`). Runtimes render
//! them, some without a sandbox (CVE-2024-34359 in llama-cpp-python): a template that
//! walks `__class__.__mro__` or reaches `lipsum.__globals__` is an exploit, not a chat
//! format. Real chat templates use loops, conditionals, `namespace()` and string
//! filters, none of the constructs below.

use std::collections::VecDeque;
use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::finding::{Finding, FindingKind, Severity, clip};

/// Score at or above which a template is reported.
pub const RISK_THRESHOLD: u32 = 30;
/// Score at or above which the finding is high severity.
const HIGH_RISK: u32 = 60;

/// A chat template found in a model's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatTemplateInfo {
    /// The metadata key it came from (`tokenizer.chat_template`, or a named variant).
    pub key: String,
    pub length: u64,
    /// Bytes assessed: the whole template, unless the file's template budget ran out
    /// (an `analysis_budget_exceeded` finding says so).
    pub assessed: u64,
    /// SHA-256 of the template text, hex; empty when not all of it was read.
    pub sha256: String,
    /// 0-100: the sum of the weights of the constructs found, capped.
    pub risk_score: u32,
    /// The risky constructs found, in order of weight.
    pub constructs: Vec<String>,
}

struct Construct {
    /// Text searched for inside Jinja blocks (`{{ }}`, `{% %}`).
    needle: &'static str,
    /// Whether the needle must stand as a whole word.
    word: bool,
    weight: u32,
    label: &'static str,
}

const fn c(needle: &'static str, word: bool, weight: u32, label: &'static str) -> Construct {
    Construct { needle, word, weight, label }
}

const CONSTRUCTS: &[Construct] = &[
    c("__class__", false, 40, "attribute walk to __class__"),
    c("__globals__", false, 50, "attribute walk to __globals__"),
    c("__subclasses__", false, 50, "attribute walk to __subclasses__"),
    c("__mro__", false, 40, "attribute walk to __mro__"),
    c("__base__", false, 40, "attribute walk to __base__/__bases__"),
    c("__builtins__", false, 50, "attribute walk to __builtins__"),
    c("__init__", false, 30, "attribute walk to __init__"),
    c("__import__", false, 50, "__import__"),
    c("__getattribute__", false, 40, "__getattribute__"),
    c("__dict__", false, 30, "attribute walk to __dict__"),
    c("__code__", false, 40, "attribute walk to __code__"),
    c("func_globals", false, 50, "func_globals"),
    c("mro(", false, 40, "mro() call"),
    c("|attr", false, 30, "|attr filter (attribute access by string)"),
    c("| attr", false, 30, "|attr filter (attribute access by string)"),
    c("\\x5f", false, 30, "escaped underscore (obfuscated dunder)"),
    c("\\u005f", false, 30, "escaped underscore (obfuscated dunder)"),
    c("\\137", false, 30, "escaped underscore (obfuscated dunder)"),
    c("'__", false, 30, "string literal starting with a dunder"),
    c("\"__", false, 30, "string literal starting with a dunder"),
    c("import", true, 20, "import"),
    c("os.", false, 30, "os module"),
    c("popen", true, 40, "popen"),
    c("subprocess", true, 40, "subprocess"),
    c("system", true, 10, "system"),
    c("eval", true, 30, "eval"),
    c("exec", true, 30, "exec"),
    c("lipsum", true, 30, "lipsum global (escape gadget)"),
    c("cycler", true, 30, "cycler global (escape gadget)"),
    c("joiner", true, 30, "joiner global (escape gadget)"),
    c("request", true, 15, "request object"),
    c("config", true, 15, "config object"),
    c("self", true, 15, "self (template internals)"),
    c("url_for", true, 20, "url_for global"),
    c("get_flashed_messages", true, 20, "get_flashed_messages global"),
    c("namespace.__", false, 40, "namespace internals"),
];

/// Scores a template. Only the Jinja blocks are searched: a system prompt that says
/// "import" in plain text is not code.
#[must_use]
pub fn assess_chat_template(key: &str, template: &str) -> ChatTemplateInfo {
    let mut assessor = Assessor::new();
    assessor.feed(template.as_bytes());
    assessor.finish(key, template.len() as u64)
}

/// The finding for a template whose score reaches [`RISK_THRESHOLD`].
#[must_use]
pub fn risk_finding(info: &ChatTemplateInfo) -> Option<Finding> {
    if info.risk_score < RISK_THRESHOLD {
        return None;
    }
    let severity = if info.risk_score >= HIGH_RISK { Severity::High } else { Severity::Medium };
    let partly = if info.assessed < info.length {
        format!(" (first {} of {} bytes assessed)", info.assessed, info.length)
    } else {
        String::new()
    };
    Some(
        Finding::new(
            FindingKind::ChatTemplateRisk,
            format!("{} scores {}/100{partly}: {}", info.key, info.risk_score, info.constructs.join(", ")),
        )
        .with_severity(severity),
    )
}

/// Scores a template fed in pieces, in one pass: each byte is looked at once by the
/// block scanner and at most once by the needle automaton, whatever the template holds
/// (unterminated blocks, `{{` everywhere, needle prefixes everywhere). The template is
/// never held in memory, so a file's templates cost time in proportion to their length
/// and memory not at all.
pub(crate) struct Assessor {
    block: Block,
    state: usize,
    /// Constructs found (bit `i` is `CONSTRUCTS[i]`).
    found: u64,
    /// Whole-word constructs matched whose next byte decides.
    pending: u64,
    /// The last bytes of block text, for the byte before a whole-word match.
    recent: [u8; RECENT],
    code_bytes: u64,
    sha: Sha256,
    read: u64,
}

/// Where the block scanner is: in plain text (just after a `{` or not), or inside a
/// block that ends with `close` then `}` (holding a `close` byte that may start the end).
#[derive(Clone, Copy)]
enum Block {
    Text,
    TextBrace,
    Code { close: u8 },
    CodeHeld { close: u8 },
}

/// Longer than the longest needle, a power of two.
const RECENT: usize = 32;
const _: () = assert!(longest_needle() < RECENT);

impl Assessor {
    pub(crate) fn new() -> Self {
        Self {
            block: Block::Text,
            state: 0,
            found: 0,
            pending: 0,
            recent: [0; RECENT],
            code_bytes: 0,
            sha: Sha256::new(),
            read: 0,
        }
    }

    /// The next piece of the template.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.read += bytes.len() as u64;
        let automaton = automaton();
        for &b in bytes {
            self.block = match self.block {
                Block::Text if b == b'{' => Block::TextBrace,
                Block::Text => Block::Text,
                Block::TextBrace => match b {
                    b'{' => Block::Code { close: b'}' },
                    b'%' => Block::Code { close: b'%' },
                    _ => Block::Text,
                },
                Block::Code { close } if b == close => Block::CodeHeld { close },
                Block::Code { close } => {
                    self.code(automaton, b);
                    Block::Code { close }
                }
                Block::CodeHeld { .. } if b == b'}' => {
                    // Blocks are separated as if by a newline: no needle spans two.
                    self.code(automaton, b'\n');
                    Block::Text
                }
                Block::CodeHeld { close } => {
                    self.code(automaton, close);
                    if b == close {
                        Block::CodeHeld { close }
                    } else {
                        self.code(automaton, b);
                        Block::Code { close }
                    }
                }
            };
        }
    }

    /// One byte of block text through the needle automaton.
    fn code(&mut self, automaton: &Automaton, b: u8) {
        if self.pending != 0 {
            if !is_ident(b) {
                self.found |= self.pending;
            }
            self.pending = 0;
        }
        self.state = usize::from(automaton.next[self.state * 256 + usize::from(b)]);
        self.recent[(self.code_bytes as usize) % RECENT] = b;
        self.code_bytes += 1;
        let ends = automaton.ends[self.state] & !self.found;
        if ends == 0 {
            return;
        }
        self.found |= ends & !automaton.words;
        let mut words = ends & automaton.words;
        while words != 0 {
            let i = words.trailing_zeros() as usize;
            words &= words - 1;
            let len = CONSTRUCTS[i].needle.len() as u64;
            let before =
                (self.code_bytes > len).then(|| self.recent[((self.code_bytes - len - 1) as usize) % RECENT]);
            if !before.is_some_and(is_ident) {
                self.pending |= 1 << i;
            }
        }
    }

    /// The assessment of what was fed, for a template of `length` bytes (more than was
    /// fed when a budget stopped the reading: the hash is then left empty, it would not
    /// be the template's).
    pub(crate) fn finish(mut self, key: &str, length: u64) -> ChatTemplateInfo {
        // An unterminated block runs to the end (failing open here would hide code).
        match self.block {
            Block::Code { .. } => self.code(automaton(), b'\n'),
            Block::CodeHeld { close } => {
                self.code(automaton(), close);
                self.code(automaton(), b'\n');
            }
            Block::Text | Block::TextBrace => {}
        }
        self.found |= self.pending;
        let mut found: Vec<&Construct> = Vec::new();
        for (i, construct) in CONSTRUCTS.iter().enumerate() {
            if self.found & (1 << i) != 0 && !found.iter().any(|f| f.label == construct.label) {
                found.push(construct);
            }
        }
        found.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.label.cmp(b.label)));
        let score = found.iter().map(|c| c.weight).sum::<u32>().min(100);
        let complete = self.read >= length;
        ChatTemplateInfo {
            key: clip(key),
            length,
            assessed: self.read,
            sha256: if complete { hex::encode(self.sha.finalize()) } else { String::new() },
            risk_score: score,
            constructs: found.iter().map(|c| c.label.to_owned()).collect(),
        }
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const fn longest_needle() -> usize {
    let mut longest = 0;
    let mut i = 0;
    while i < CONSTRUCTS.len() {
        if CONSTRUCTS[i].needle.len() > longest {
            longest = CONSTRUCTS[i].needle.len();
        }
        i += 1;
    }
    longest
}

const _: () = assert!(CONSTRUCTS.len() <= 64, "found sets are u64 masks");

/// An Aho-Corasick automaton over the needles of [`CONSTRUCTS`], as a full transition
/// table: one lookup per byte, no backtracking.
struct Automaton {
    /// `next[state * 256 + byte]`.
    next: Vec<u16>,
    /// The constructs whose needle ends in each state (suffixes included).
    ends: Vec<u64>,
    /// The constructs that must stand as whole words.
    words: u64,
}

fn automaton() -> &'static Automaton {
    static AUTOMATON: OnceLock<Automaton> = OnceLock::new();
    AUTOMATON.get_or_init(Automaton::build)
}

impl Automaton {
    fn build() -> Self {
        const NONE: u16 = u16::MAX;
        let mut goto: Vec<[u16; 256]> = vec![[NONE; 256]];
        let mut ends = vec![0u64];
        let mut words = 0u64;
        for (i, construct) in CONSTRUCTS.iter().enumerate() {
            let mut state = 0;
            for &b in construct.needle.as_bytes() {
                if goto[state][usize::from(b)] == NONE {
                    goto.push([NONE; 256]);
                    ends.push(0);
                    goto[state][usize::from(b)] = u16::try_from(goto.len() - 1).unwrap_or(NONE);
                }
                state = usize::from(goto[state][usize::from(b)]);
            }
            ends[state] |= 1 << i;
            if construct.word {
                words |= 1 << i;
            }
        }
        // Breadth first, so that a state's failure target is complete before it.
        let mut fail = vec![0usize; goto.len()];
        let mut queue = VecDeque::new();
        for slot in &mut goto[0] {
            match *slot {
                NONE => *slot = 0,
                child => queue.push_back(usize::from(child)),
            }
        }
        while let Some(state) = queue.pop_front() {
            ends[state] |= ends[fail[state]];
            let fallback = goto[fail[state]];
            for (slot, via_fail) in goto[state].iter_mut().zip(fallback) {
                if *slot == NONE {
                    *slot = via_fail;
                } else {
                    fail[usize::from(*slot)] = usize::from(via_fail);
                    queue.push_back(usize::from(*slot));
                }
            }
        }
        Self { next: goto.concat(), ends, words }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Llama 3 template, shortened: loops, `namespace`-free, string concatenation.
    const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}\
        {% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ \
        message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}\
        {% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}\
        {% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    /// Qwen-style templates use `namespace()` legitimately.
    const QWEN_LIKE: &str = "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\
        {%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}\
        {%- if ns.multi_step_tool and message.role == \"user\" %}{%- set ns.multi_step_tool = false %}\
        {%- endif %}{%- endfor %}System: you must not import anything or execute code.";

    #[test]
    fn real_templates_score_low() {
        for t in [LLAMA3, QWEN_LIKE] {
            let info = assess_chat_template("tokenizer.chat_template", t);
            assert!(info.risk_score < RISK_THRESHOLD, "{info:?}");
            assert!(risk_finding(&info).is_none());
        }
    }

    #[test]
    fn ssti_payloads_score_high() {
        let payloads = [
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ lipsum.__globals__['os'].popen('id').read() }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{{ self._TemplateReference__context.joiner.__init__.__globals__ }}",
            "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
            "{% for x in ().__class__.__base__.__subclasses__() %}{% endfor %}",
        ];
        for p in payloads {
            let info = assess_chat_template("tokenizer.chat_template", p);
            let finding = risk_finding(&info).unwrap_or_else(|| panic!("not flagged: {p}"));
            assert_eq!(finding.severity, Severity::High, "{p}: {info:?}");
        }
    }

    #[test]
    fn dunders_outside_blocks_are_text() {
        let info = assess_chat_template("k", "Talk about __class__ and import antigravity.");
        assert_eq!(info.risk_score, 0);
    }

    #[test]
    fn unterminated_blocks_are_still_searched() {
        let info = assess_chat_template("k", "{{ ''.__class__.__mro__");
        assert!(info.risk_score >= HIGH_RISK);
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        let info = assess_chat_template("k", "abc");
        assert_eq!(info.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(info.length, 3);
    }

    /// The original two-step scorer (extract the blocks, then search each needle), kept
    /// as the oracle: quadratic on hostile input, but obviously right.
    fn reference_score(template: &str) -> (u32, Vec<String>) {
        let mut code = String::new();
        let mut rest = template;
        loop {
            let open = match (rest.find("{{"), rest.find("{%")) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            let close = if rest[open..].starts_with("{{") { "}}" } else { "%}" };
            let body = &rest[open + 2..];
            let end = body.find(close).unwrap_or(body.len());
            code.push_str(&body[..end]);
            code.push('\n');
            rest = body.get(end + 2..).unwrap_or("");
        }
        let contains = |needle: &str, word: bool| {
            if !word {
                return code.contains(needle);
            }
            let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
            code.match_indices(needle).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                let after = code[at + needle.len()..].chars().next();
                !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
            })
        };
        let mut found: Vec<&Construct> = Vec::new();
        for construct in CONSTRUCTS {
            if !found.iter().any(|f| f.label == construct.label) && contains(construct.needle, construct.word)
            {
                found.push(construct);
            }
        }
        found.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.label.cmp(b.label)));
        let score = found.iter().map(|c| c.weight).sum::<u32>().min(100);
        (score, found.iter().map(|c| c.label.to_owned()).collect())
    }

    /// Templates made of the pieces that matter to both scanners: block delimiters,
    /// needles, needle prefixes, identifier and non-identifier bytes, non-ASCII text.
    fn generated_templates() -> impl Iterator<Item = String> {
        const PIECES: &[&str] = &[
            "{{",
            "{%",
            "}}",
            "%}",
            "{",
            "}",
            "%",
            "{#",
            "#}",
            " ",
            "x",
            "_",
            "__",
            "'",
            "\"",
            ".",
            "(",
            "\n",
            "é",
            "self",
            "selfie",
            "import",
            "mro(",
            "|attr",
            "| attr",
            "os.",
            "lipsum",
            "eval",
            "__class__",
            "__cla",
            "\\x5f",
            "\\137",
            "system",
            "_system",
            "url_for",
            "namespace.__",
            "config",
            "joiner",
            "request",
            "exec",
            "popen",
            "subprocess",
            "'__",
            "\"__",
        ];
        let mut state = 0x2545_f491_u32;
        (0..4000).map(move |_| {
            let mut t = String::new();
            let pieces = 1 + (state >> 28) as usize;
            for _ in 0..pieces * 3 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                t.push_str(PIECES[(state >> 16) as usize % PIECES.len()]);
            }
            t
        })
    }

    #[test]
    fn one_pass_scorer_agrees_with_the_reference() {
        let mut flagged = 0;
        for t in generated_templates() {
            let info = assess_chat_template("k", &t);
            let (score, constructs) = reference_score(&t);
            assert_eq!((info.risk_score, &info.constructs), (score, &constructs), "template {t:?}");
            flagged += usize::from(score > 0);
        }
        assert!(flagged > 1000, "the generator must exercise the needles ({flagged} flagged)");
    }

    #[test]
    fn feeding_in_pieces_changes_nothing() {
        for t in generated_templates().take(500) {
            let whole = assess_chat_template("k", &t);
            for split in [1, 2, 3, 7] {
                let mut assessor = Assessor::new();
                for piece in t.as_bytes().chunks(split) {
                    assessor.feed(piece);
                }
                assert_eq!(assessor.finish("k", t.len() as u64), whole, "split {split}: {t:?}");
            }
        }
    }

    #[test]
    fn a_partly_read_template_has_no_hash() {
        let mut assessor = Assessor::new();
        assessor.feed(b"{{ lipsum.__globals__ ");
        let info = assessor.finish("k", 1000);
        assert_eq!(info.assessed, 22);
        assert!(info.sha256.is_empty());
        let finding = risk_finding(&info).expect("flagged on what was read");
        assert!(finding.message.contains("first 22 of 1000 bytes"), "{}", finding.message);
    }
}
