//! Which inference runtime a process is, from its executable and arguments. Names are a
//! first cut; behaviour completes them (a process that maps a model file is treated as
//! a runtime whatever it is called: `Runtime::UnknownLoader`).

use crate::domain::runtime::{Classification, Role, Runtime};

fn found(runtime: Runtime, role: Role, rule: String) -> Option<Classification> {
    Some(Classification { runtime, role, rule })
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Classifies a process from its executable path and argument vector.
#[must_use]
pub fn classify(exe: &str, argv: &[String]) -> Option<Classification> {
    let arg0 = argv.first().map_or("", |a| basename(a));
    for name in [basename(exe), arg0] {
        if let Some(hit) = by_name(name, exe, argv) {
            return Some(hit);
        }
    }
    if is_interpreter(basename(exe)) || is_interpreter(arg0) {
        return by_script(argv);
    }
    None
}

/// The first argument that is not an option, and the rest after it.
fn subcommand(argv: &[String]) -> &str {
    argv.iter().skip(1).find(|a| !a.starts_with('-')).map_or("", String::as_str)
}

fn by_name(name: &str, exe: &str, argv: &[String]) -> Option<Classification> {
    let rule = |what: &str| format!("executable `{name}`{what}");
    match name {
        "ollama" => {
            let sub = subcommand(argv);
            let role = match sub {
                "serve" => Role::Server,
                "runner" => Role::Worker,
                _ => Role::Client,
            };
            found(
                Runtime::Ollama,
                role,
                rule(&if sub.is_empty() { String::new() } else { format!(" `{sub}`") }),
            )
        }
        // Ollama ships its own llama.cpp server and runs it as a worker.
        "llama-server" | "ollama_llama_server" if exe.contains("/ollama/") || name.starts_with("ollama") => {
            found(Runtime::Ollama, Role::Worker, rule(" under Ollama"))
        }
        "llama-server" | "llama.cpp-server" => found(Runtime::LlamaCpp, Role::Server, rule("")),
        "llama-cli" | "llama-run" | "llama-simple" | "llama-mtmd-cli" | "llama-bench" | "llama-embedding" => {
            found(Runtime::LlamaCpp, Role::Cli, rule(""))
        }
        "vllm" => {
            let role = if subcommand(argv) == "serve" { Role::Server } else { Role::Cli };
            found(Runtime::Vllm, role, rule(""))
        }
        "lms" => found(Runtime::LmStudio, Role::Client, rule("")),
        "lm-studio" | "LM Studio" | "lmstudio" => found(Runtime::LmStudio, Role::Server, rule("")),
        _ if name.starts_with("LM-Studio") || name.starts_with("LM_Studio") => {
            found(Runtime::LmStudio, Role::Server, rule(""))
        }
        _ if name.starts_with("koboldcpp") => found(Runtime::KoboldCpp, Role::Server, rule("")),
        "local-ai" | "localai" => found(Runtime::LocalAi, Role::Server, rule("")),
        "jan" | "Jan" => found(Runtime::Jan, Role::Server, rule("")),
        "gpt4all" | "GPT4All" => found(Runtime::Gpt4All, Role::Server, rule("")),
        "chat" if exe.to_ascii_lowercase().contains("gpt4all") => {
            found(Runtime::Gpt4All, Role::Server, rule(" in a GPT4All install"))
        }
        "llamafile" => found(Runtime::Llamafile, Role::Server, rule("")),
        _ if name.ends_with(".llamafile") => found(Runtime::Llamafile, Role::Server, rule("")),
        "text-generation-launcher" | "text-generation-router" => found(Runtime::Tgi, Role::Server, rule("")),
        "text-generation-server" => found(Runtime::Tgi, Role::Worker, rule("")),
        _ => None,
    }
}

fn is_interpreter(name: &str) -> bool {
    name == "python"
        || name.strip_prefix("python3").is_some_and(|v| v.is_empty() || v.starts_with('.'))
        || matches!(name, "bash" | "sh" | "uv" | "pipx")
}

/// `python -m <module>` or `python <script>` (and scripts run by a shell).
fn by_script(argv: &[String]) -> Option<Classification> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-m" {
            let module = args.next()?;
            return by_module(module);
        }
        if arg.starts_with('-') {
            continue;
        }
        return by_script_path(arg, argv);
    }
    None
}

fn by_module(module: &str) -> Option<Classification> {
    let rule = format!("python module `{module}`");
    let root = module.split('.').next().unwrap_or(module);
    match root {
        "vllm" => found(Runtime::Vllm, Role::Server, rule),
        "sglang" => found(Runtime::Sglang, Role::Server, rule),
        "llama_cpp" => found(Runtime::LlamaCpp, Role::Server, rule),
        "text_generation_server" => found(Runtime::Tgi, Role::Worker, rule),
        "koboldcpp" => found(Runtime::KoboldCpp, Role::Server, rule),
        _ => None,
    }
}

fn by_script_path(script: &str, argv: &[String]) -> Option<Classification> {
    let name = basename(script);
    let rule = format!("script `{script}`");
    if script.contains("text-generation-webui")
        && matches!(name, "server.py" | "one_click.py" | "start_linux.sh")
    {
        return found(Runtime::TextGenerationWebui, Role::Server, rule);
    }
    match name {
        "koboldcpp.py" => found(Runtime::KoboldCpp, Role::Server, rule),
        "vllm" => {
            let role = if argv.iter().any(|a| a == "serve") { Role::Server } else { Role::Cli };
            found(Runtime::Vllm, role, rule)
        }
        "local-ai" => found(Runtime::LocalAi, Role::Server, rule),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    fn runtime_of(exe: &str, args: &[&str]) -> Option<(Runtime, Role)> {
        classify(exe, &argv(args)).map(|c| (c.runtime, c.role))
    }

    #[test]
    fn runtimes_by_executable() {
        use Role::*;
        use Runtime::*;
        assert_eq!(runtime_of("/usr/local/bin/ollama", &["ollama", "serve"]), Some((Ollama, Server)));
        assert_eq!(runtime_of("/usr/local/bin/ollama", &["ollama", "run", "llama3"]), Some((Ollama, Client)));
        assert_eq!(
            runtime_of("/usr/local/bin/ollama", &["ollama", "runner", "--model", "x"]),
            Some((Ollama, Worker))
        );
        assert_eq!(
            runtime_of("/usr/local/lib/ollama/llama-server", &["llama-server", "--model", "b"]),
            Some((Ollama, Worker))
        );
        assert_eq!(
            runtime_of("/opt/llama.cpp/llama-server", &["llama-server", "-m", "x"]),
            Some((LlamaCpp, Server))
        );
        assert_eq!(runtime_of("/usr/bin/llama-cli", &["llama-cli"]), Some((LlamaCpp, Cli)));
        assert_eq!(
            runtime_of("/home/u/.lmstudio/bin/lms", &["lms", "server", "start"]),
            Some((LmStudio, Client))
        );
        assert_eq!(
            runtime_of("/opt/koboldcpp-linux-x64", &["koboldcpp-linux-x64"]),
            Some((KoboldCpp, Server))
        );
        assert_eq!(runtime_of("/usr/bin/local-ai", &["local-ai", "run"]), Some((LocalAi, Server)));
        assert_eq!(runtime_of("/tmp/mistral.llamafile", &["mistral.llamafile"]), Some((Llamafile, Server)));
    }

    #[test]
    fn runtimes_behind_interpreters() {
        use Runtime::*;
        let py = "/usr/bin/python3.11";
        assert_eq!(
            runtime_of(py, &["python3", "-m", "vllm.entrypoints.openai.api_server"]),
            Some((Vllm, Role::Server))
        );
        assert_eq!(
            runtime_of(py, &["python3", "/usr/local/bin/vllm", "serve", "m"]),
            Some((Vllm, Role::Server))
        );
        assert_eq!(
            runtime_of(py, &["python3", "-u", "-m", "sglang.launch_server"]),
            Some((Sglang, Role::Server))
        );
        assert_eq!(
            runtime_of(py, &["python", "/home/u/text-generation-webui/server.py", "--api"]),
            Some((TextGenerationWebui, Role::Server))
        );
        assert_eq!(runtime_of("/bin/bash", &["bash", "/opt/koboldcpp.py"]), Some((KoboldCpp, Role::Server)));
    }

    #[test]
    fn ordinary_programs_are_not_runtimes() {
        assert_eq!(runtime_of("/usr/bin/python3", &["python3", "-m", "http.server"]), None);
        assert_eq!(runtime_of("/usr/bin/python3", &["python3"]), None);
        assert_eq!(runtime_of("/usr/bin/cat", &["cat", "ollama"]), None);
        assert_eq!(runtime_of("/usr/bin/chat", &["chat"]), None);
        assert_eq!(runtime_of("", &[]), None);
    }
}
