//! `--tools`: which tools a shim offers. Every tool's name, description
//! and schemas take room in the model's context in every session, so users
//! who want fewer name them, or a profile, and the rest are neither listed
//! nor callable.

use rmcp::handler::server::router::tool::ToolRoute;

use super::all;
use crate::server::SshMcp;

/// Profiles `--tools` takes beside tool names, with what each holds.
pub const PROFILES: [(&str, &str); 3] = [
    ("all", "every tool; the default"),
    (
        "read-only",
        "the tools marked read-only, which change nothing",
    ),
    (
        "files",
        "every tool but exec, the job and the shell tools: files only, no commands",
    ),
];

/// The tools `spec` names: tool names and profiles, comma-separated, in
/// the order [`all`] lists them. An unknown name is an error that lists
/// the known ones.
pub fn select(spec: &str) -> Result<Vec<ToolRoute<SshMcp>>, String> {
    let words: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .collect();
    if words.is_empty() {
        return Err(format!(
            "--tools needs tool names or a profile; {}",
            known()
        ));
    }
    let tools = all();
    if let Some(unknown) = words.iter().find(|word| {
        !PROFILES.iter().any(|(profile, _)| profile == *word)
            && !tools.iter().any(|tool| tool.name() == **word)
    }) {
        return Err(format!(
            "--tools: no tool or profile `{unknown}`; {}",
            known()
        ));
    }
    Ok(tools
        .into_iter()
        .filter(|tool| words.iter().any(|word| in_word(tool, word)))
        .collect())
}

/// The tools that run commands or steer them, which `files` leaves out.
const COMMANDS: [&str; 7] = [
    "exec",
    "job_output",
    "job_signal",
    "jobs",
    "shell_open",
    "shell_exec",
    "shell_close",
];

/// Whether `word` (a tool name or a profile) takes in `tool`.
fn in_word(tool: &ToolRoute<SshMcp>, word: &str) -> bool {
    let read_only = tool
        .attr
        .annotations
        .as_ref()
        .is_some_and(|hints| hints.read_only_hint == Some(true));
    match word {
        "all" => true,
        "read-only" => read_only,
        "files" => !COMMANDS.contains(&tool.name()),
        name => tool.name() == name,
    }
}

/// The names `--tools` takes, for its errors.
pub fn known() -> String {
    let tools: Vec<String> = all().iter().map(|tool| tool.name().to_string()).collect();
    let profiles: Vec<String> = PROFILES
        .iter()
        .map(|(profile, what)| format!("{profile} ({what})"))
        .collect();
    format!(
        "tools: {}; profiles: {}",
        tools.join(", "),
        profiles.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        select(spec)
            .unwrap()
            .iter()
            .map(|tool| tool.name().to_string())
            .collect()
    }

    #[test]
    fn read_only_is_every_tool_marked_read_only() {
        assert_eq!(
            names("read-only"),
            [
                "hosts",
                "stat",
                "list_dir",
                "read_file",
                "job_output",
                "jobs"
            ]
        );
    }

    #[test]
    fn names_and_profiles_mix_and_keep_the_registry_order() {
        assert_eq!(
            names(" read_file, exec ,hosts"),
            ["hosts", "exec", "read_file"]
        );
        assert_eq!(names("read-only,exec").len(), 7);
        assert_eq!(names("all").len(), all().len());
        for command in COMMANDS {
            assert!(!names("files").contains(&command.to_string()), "{command}");
        }
        assert_eq!(names("job_signal,jobs"), ["job_signal", "jobs"]);
        // A batch under `files` may carry every file tool, and no command.
        assert!(names("files").contains(&"batch".to_string()));
        assert!(!names("read-only").contains(&"batch".to_string()));
    }

    #[test]
    fn the_usage_text_names_every_tool_and_profile() {
        for tool in all() {
            assert!(crate::args::USAGE.contains(tool.name()), "{}", tool.name());
        }
        for (profile, _) in PROFILES {
            assert!(crate::args::USAGE.contains(profile), "{profile}");
        }
    }

    #[test]
    fn unknown_names_are_refused_listing_the_known_ones() {
        let err = select("exec,shell").unwrap_err();
        assert!(err.contains("`shell`"), "{err}");
        assert!(
            err.contains("read_file") && err.contains("read-only"),
            "{err}"
        );
        assert!(select(" , ").is_err());
    }
}
