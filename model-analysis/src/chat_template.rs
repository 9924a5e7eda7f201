//! Risk scoring of Jinja chat templates (`tokenizer.chat_template`). Runtimes render
//! them, some without a sandbox (CVE-2024-34359 in llama-cpp-python): a template that
//! walks `__class__.__mro__` or reaches `lipsum.__globals__` is an exploit, not a chat
//! format. Real chat templates use loops, conditionals, `namespace()` and string
//! filters, none of the constructs below.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::finding::{Finding, FindingKind, Severity};

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
    /// SHA-256 of the template text, hex.
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
    let code = jinja_blocks(template);
    let mut found: Vec<&Construct> = Vec::new();
    for construct in CONSTRUCTS {
        if found.iter().any(|f| f.label == construct.label) {
            continue;
        }
        if contains(&code, construct.needle, construct.word) {
            found.push(construct);
        }
    }
    found.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.label.cmp(b.label)));
    let score = found.iter().map(|c| c.weight).sum::<u32>().min(100);
    ChatTemplateInfo {
        key: key.to_owned(),
        length: template.len() as u64,
        sha256: hex(&Sha256::digest(template.as_bytes())),
        risk_score: score,
        constructs: found.iter().map(|c| c.label.to_owned()).collect(),
    }
}

/// The finding for a template whose score reaches [`RISK_THRESHOLD`].
#[must_use]
pub fn risk_finding(info: &ChatTemplateInfo) -> Option<Finding> {
    if info.risk_score < RISK_THRESHOLD {
        return None;
    }
    let severity = if info.risk_score >= HIGH_RISK { Severity::High } else { Severity::Medium };
    Some(
        Finding::new(
            FindingKind::ChatTemplateRisk,
            format!("{} scores {}/100: {}", info.key, info.risk_score, info.constructs.join(", ")),
        )
        .with_severity(severity),
    )
}

/// The text of every `{{ ... }}` and `{% ... %}` block, joined by newlines. An
/// unterminated block runs to the end (failing open here would hide code).
fn jinja_blocks(template: &str) -> String {
    let mut out = String::new();
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
        out.push_str(&body[..end]);
        out.push('\n');
        rest = body.get(end + 2..).unwrap_or("");
    }
    out
}

fn contains(haystack: &str, needle: &str, word: bool) -> bool {
    if !word {
        return haystack.contains(needle);
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
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
}
