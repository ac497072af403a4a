//! The policy as a user meets it: lines refused or allowed on configured
//! hosts, and the rule each answer names.

use super::*;
use crate::config::Config;

const CLAUDE_CODE: CallerId<'static> = CallerId {
    mcp_client: Some("claude-code"),
    executable: "/usr/bin/sshmcp",
};

fn policy(toml: &str) -> Policy {
    Policy::new(&Config::parse(toml).unwrap_or_else(|e| panic!("{e}")).policy)
}

fn read_only_web() -> Policy {
    policy("[policy.hosts.\"web*\"]\naccess = \"read-only\"\n")
}

fn judge(policy: &Policy, alias: &str, line: &str) -> Verdict {
    policy.host(alias, &CLAUDE_CODE).command(line, false)
}

fn denial(verdict: Verdict, line: &str) -> Denial {
    match verdict {
        Verdict::Deny(denial) => denial,
        Verdict::Allow { rule, .. } => panic!("`{line}` was allowed by {rule}"),
    }
}

fn allowed(verdict: Verdict, line: &str) -> (bool, String) {
    match verdict {
        Verdict::Allow { confirm, rule } => (confirm, rule),
        Verdict::Deny(denial) => panic!("`{line}` was refused: {denial}"),
    }
}

/// Lines that try to get a change past a read-only host, each with the
/// words its refusal must contain: refused for the right reason, not by
/// luck.
const BYPASSES: &[(&str, &str)] = &[
    // Chains hiding a second command.
    (
        "ls; rm -rf x",
        "`rm -rf x` is not in the built-in read-only set",
    ),
    (
        "ls && rm -rf x",
        "`rm -rf x` is not in the built-in read-only set",
    ),
    (
        "false || rm -rf x",
        "`rm -rf x` is not in the built-in read-only set",
    ),
    (
        "ls | rm -rf x",
        "`rm -rf x` is not in the built-in read-only set",
    ),
    (
        "ls\nrm -rf x",
        "`rm -rf x` is not in the built-in read-only set",
    ),
    ("ls & rm x", "background"),
    ("ls |& rm x", "`rm x` is not in the built-in read-only set"),
    // Substitutions.
    ("ls `rm x`", "command substitution"),
    ("ls $(rm x)", "command substitution"),
    ("echo \"$(rm x)\"", "command substitution"),
    ("echo \"`rm x`\"", "command substitution"),
    ("ls --color=$(rm x)", "command substitution"),
    ("cat <(rm x)", "process substitution"),
    ("ls >(rm x)", "process substitution"),
    ("ls $((1+1))", "arithmetic expansion"),
    // Redirections to and from files.
    ("ls > /etc/passwd", "redirection `> /etc/passwd`"),
    ("ls >> /root/.ssh/authorized_keys", "redirection"),
    ("ls >| /tmp/x", "redirection"),
    ("ls >&/tmp/x", "redirection"),
    ("ls 2>/tmp/err", "redirection"),
    ("cat < /etc/shadow", "redirection `< /etc/shadow`"),
    ("ls &>/tmp/x", "`&>`"),
    ("ls &>/dev/null rm x", "`&>`"),
    ("cat <<EOF\nx\nEOF", "here-document"),
    ("cat <<< x", "here-string"),
    ("> /etc/motd", "redirection without a command"),
    // Expansions that hide words.
    ("rm$IFS-rf$IFS/", "parameter expansion"),
    ("ls$IFS;rm x", "parameter expansion"),
    ("$0 -c 'rm x'", "parameter expansion"),
    ("cat $HOME/.ssh/id_rsa", "parameter expansion"),
    ("ls {a,-rf}", "brace expansion"),
    ("{rm,x}", "brace expansion"),
    ("sort *", "has the glob `*`"),
    ("uniq a*", "has the glob `a*`"),
    ("systemctl re* nginx", "has the glob `re*`"),
    ("sudo *", "has the glob `*`"),
    ("/bin/r? x", "glob in the command name"),
    ("~/rm x", "`~` in the command name"),
    ("ls ~+", "held in a variable"),
    ("$'\\x72m' x", "$'…' quoting"),
    // Quotes and escapes that split or hide the command name.
    ("r\"m\" -rf x", "quoted or escaped command name"),
    ("'r'm -rf x", "quoted or escaped command name"),
    ("\\rm -rf x", "quoted or escaped command name"),
    ("r\\m x", "quoted or escaped command name"),
    ("rm\\ x", "quoted or escaped command name"),
    (
        "r\\\nm -rf x",
        "`rm -rf x` is not in the built-in read-only set",
    ),
    // Look-alikes and control characters.
    ("ls\u{037E}rm -rf x", "non-ASCII"),
    ("ls x\u{037E}rm -rf x", "non-ASCII"),
    ("ls\u{FF1B}rm -rf x", "non-ASCII"),
    ("ls \u{FF5C} rm -rf x", "non-ASCII"),
    ("ls\u{FF06}\u{FF06}rm x", "non-ASCII"),
    ("ls\r\nrm x", "control character"),
    ("ls x#; rm y", "outside quotes"),
    // Assignments and shell builtins.
    ("PATH=/tmp ls", "assignment `PATH=/tmp`"),
    ("LD_PRELOAD=/tmp/x.so ls", "assignment"),
    ("alias ls=rm; ls x", "shell builtin"),
    ("eval rm x", "shell builtin"),
    ("source x", "shell builtin"),
    (". x", "shell builtin"),
    ("exec rm x", "shell builtin"),
    ("builtin eval rm x", "`eval rm x` is a shell builtin"),
    ("coproc rm x", "shell builtin"),
    ("export PATH=/tmp", "shell builtin"),
    ("test -v 'a[$(rm x)]'", "evaluates array subscripts"),
    ("printf -v x '%s' y", "assigns a variable"),
    // Compound commands and functions.
    ("( rm x )", "subshell"),
    ("{ rm x; }", "group"),
    ("if true; then rm x; fi", "`if`"),
    ("for f in x; do rm $f; done", "`for` loop"),
    ("while true; do rm x; done", "`while`"),
    ("case x in x) rm x;; esac", "`case`"),
    ("f(){ rm x; }; f", "function"),
    ("[[ -f x ]] && rm x", "`[[ … ]]`"),
    // Paths and wrappers.
    (
        "/bin/rm x",
        "`/bin/rm x` is not in the built-in read-only set",
    ),
    ("./rm x", "outside the system directories"),
    ("/tmp/ls", "outside the system directories"),
    (
        "command rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    (
        "busybox rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    ("env rm x", "`rm x` is not in the built-in read-only set"),
    ("env -S 'rm x'", "splits a string"),
    ("env FOO=1 ls", "sets `FOO=1`"),
    ("env -i PATH=/tmp ls", "sets `PATH=/tmp`"),
    ("nice rm x", "`rm x` is not in the built-in read-only set"),
    (
        "nice -n 5 rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    (
        "timeout 5 rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    (
        "timeout -s KILL 5 rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    ("sudo rm x", "`rm x` is not in the built-in read-only set"),
    (
        "sudo -u root rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    ("sudo -s", "root shell"),
    ("nohup rm x", "`rm x` is not in the built-in read-only set"),
    (
        "stdbuf -oL rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    ("setsid rm x", "`rm x` is not in the built-in read-only set"),
    (
        "ionice -c3 rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    (
        "chrt -f 10 rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    (
        "taskset -c 0 rm x",
        "`rm x` is not in the built-in read-only set",
    ),
    ("xargs rm", "`rm` is not in the built-in read-only set"),
    ("xargs -I{} sh -c 'rm {}'", "can run code given inline"),
    ("xargs sort", "gets more arguments from xargs's input"),
    (
        "echo -delete | xargs find .",
        "gets more arguments from xargs's input",
    ),
    (
        "echo rm x | xargs env",
        "gets more arguments from xargs's input",
    ),
    ("xargs nice -n", "gets more arguments from xargs's input"),
    // Interpreters and programs that run code.
    ("sh -c 'rm x'", "can run code given inline"),
    ("bash -c 'rm x'", "can run code given inline"),
    ("bash", "standard input"),
    ("busybox sh -c 'rm x'", "can run code given inline"),
    ("python3 -c 'import os'", "can run code given inline"),
    ("perl -e 'unlink \"x\"'", "can run code given inline"),
    (
        "awk 'BEGIN{system(\"rm x\")}'",
        "awk programs can run commands",
    ),
    ("less /etc/passwd", "can start a shell"),
    ("vim -c '!rm x' f", "can start a shell"),
    ("man ls", "can start a shell"),
    ("git -c core.pager='sh -c id' log", "before the subcommand"),
    ("git --exec-path=/tmp log", "before the subcommand"),
    ("git log --output=/tmp/x", "writes a file or runs a program"),
    ("git diff --ext-diff", "writes a file or runs a program"),
    ("git branch evil", "creates, moves or deletes a branch"),
    ("git push", "not in the read-only git set"),
    ("tar --to-command=sh -xf a.tar", "runs a program"),
    ("tar xIf sh a.tar", "runs a program"),
    ("tar -tf a.tar", "not in the built-in read-only set"),
    (
        "rsync -e 'sh -c id' a b",
        "runs a command of its own choosing",
    ),
    ("ssh -o ProxyCommand='rm x' h", "other hosts"),
    ("scp a h:b", "other hosts"),
    (
        "rg --pre 'sh -c id' x",
        "runs a command of its own choosing",
    ),
    (
        "rg --hostname-bin=/tmp/x y",
        "runs a command of its own choosing",
    ),
    // find, sed, dd, tee.
    (
        "find . -exec rm {} \\;",
        "`rm {}` is not in the built-in read-only set",
    ),
    (
        "find . -execdir sh -c 'rm x' \\;",
        "can run code given inline",
    ),
    ("find . -delete", "removes files"),
    ("find . -fprint /tmp/x", "writes a file"),
    ("find . -exec grep x {}", "without its `;` or `+`"),
    ("sed -i s/a/b/ f", "edits files in place"),
    ("sed s/a/b/ -i f", "edits files in place"),
    ("sed --in-place=.bak s/a/b/ f", "edits files in place"),
    ("sed 's/a/b/w /tmp/x' f", "`w` flag"),
    ("sed '1e rm x' f", "`e` command"),
    ("sed -f script.sed f", "script from a file"),
    ("dd if=/dev/zero of=/tmp/x", "`of=/tmp/x`"),
    ("tee /etc/x", "writes its input to files"),
    // Options of read-only commands that write.
    ("sort -o /etc/x f", "has `-o`"),
    ("sort -no /etc/x f", "has `-no`"),
    ("sort --out=/etc/x f", "has `--out=/etc/x`"),
    ("date -s now", "sets the clock"),
    ("date 010100002030", "sets the clock"),
    ("hostname evil", "sets the host name"),
    ("uniq a b", "writes the second"),
    ("journalctl --vacuum-size=1", "changes the journal"),
    ("journalctl --rotate", "changes the journal"),
    ("systemctl restart x", "changes the system"),
    (
        "systemctl -p status restart nginx",
        "comes before the subcommand",
    ),
    ("systemctl -H other status", "another machine"),
    (
        "ip link set eth0 down",
        "has `set`, which changes the network",
    ),
    ("ip -b cmds", "has `-b` where the read-only set has addr"),
    ("dmesg -C", "changes the kernel log"),
    ("ss -K dst 10.0.0.1", "kills sockets"),
    ("file -C -m x", "compiled magic"),
    ("mount /dev/sda1 /mnt", "mounts a file system"),
    // What cannot be parsed is not judged.
    ("ls 'unterminated", "cannot be parsed"),
    ("ls )", "cannot be parsed"),
];

#[test]
fn every_bypass_in_the_corpus_is_refused_for_its_reason() {
    assert!(BYPASSES.len() >= 70, "{} bypasses", BYPASSES.len());
    let policy = read_only_web();
    let mut failures = Vec::new();
    for (line, words) in BYPASSES {
        match judge(&policy, "web1", line) {
            Verdict::Allow { rule, .. } => failures.push(format!("{line:?}: ALLOWED by {rule}")),
            Verdict::Deny(denial) => {
                if !denial.reason.contains(words) {
                    failures.push(format!("{line:?}: {denial}\n    wanted: {words}"));
                }
                if !denial.reason.contains("web1")
                    || denial.rule != "policy.hosts.\"web*\".access = \"read-only\""
                {
                    failures.push(format!("{line:?}: names the wrong host or rule: {denial}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Everyday read-only work, which must not be refused.
const READS: &[&str] = &[
    "ls -la /var/log",
    "cat /etc/os-release",
    "grep -r foo /srv 2>/dev/null | head -n 20",
    "ps aux | sort -k3 -rn | head",
    "df -h && free -m",
    "systemctl status nginx",
    "systemctl --no-pager status nginx",
    "systemctl list-units --failed",
    "journalctl -u nginx -n 50 --no-pager",
    "find /var/log -name '*.log' -mtime -1",
    "tail -n 100 /var/log/syslog",
    "du -sh /srv/*",
    "ls -d */ && wc -l *.log",
    "date -d yesterday +%F",
    "uname -a; uptime; whoami",
    "id && groups",
    "hostname",
    "hostname -f",
    "stat /etc/passwd",
    "wc -l /var/log/syslog",
    "sort -u /etc/group | cut -d: -f1",
    "echo \"hello world\"",
    "echo 'a;b|c&d $HOME' \"it's\"",
    "printf '%s\\n' a b",
    "git log --oneline -n 5",
    "git --no-pager diff HEAD~1",
    "git status --short",
    "git branch -a",
    "ip addr show",
    "ip -br a",
    "ss -tlnp",
    "lsblk; lscpu | head -n 5",
    "date +%Y-%m-%d",
    "cd /var/log && ls -t | head -n 3",
    "readlink -f /proc/self/exe",
    "sha256sum /etc/hosts",
    "getent passwd root",
    "dmesg -T | tail",
    "sed -n '1,20p' /etc/passwd",
    "sed 's/a/b/g' /etc/hosts",
    "find . -name '*.rs' -exec grep -l unsafe {} +",
    "find /etc -name '*.conf' -print0 | xargs -0 grep -l ssl",
    "test -f /etc/passwd && echo yes",
    "[ -d /srv ] || echo missing",
    "env",
    "command -v docker",
    "timeout 5 cat /proc/loadavg",
    "sudo -n journalctl -n 20",
    "nice -n 10 du -sh /var",
    "ls -la ~/ ~root",
    "grep -rn --include=*.py import .",
    "ls # list the directory",
    "cat /etc/hostname 2>&1 >/dev/null </dev/null",
    "! grep -q x /etc/hosts",
    "time ls",
    "w; who; last -n 5",
    "ps -ef |& grep sshd",
    "mount",
    "busybox ls /",
    "lsof -i :22",
    "ls \"/var/log/my app\"",
    "/usr/bin/ls \\\n  -la",
    "grep 'caf\u{e9}' /etc/motd",
];

#[test]
fn everyday_read_only_commands_are_allowed() {
    assert!(READS.len() >= 30, "{} reads", READS.len());
    let policy = read_only_web();
    let refused: Vec<String> = READS
        .iter()
        .filter_map(|line| match judge(&policy, "web1", line) {
            Verdict::Allow { confirm: false, .. } => None,
            other => Some(format!("{line:?}: {other:?}")),
        })
        .collect();
    assert!(refused.is_empty(), "\n{}", refused.join("\n"));
}

#[test]
fn a_read_only_answer_names_the_built_in_set() {
    let (_, rule) = allowed(judge(&read_only_web(), "web1", "ls"), "ls");
    assert_eq!(rule, "built-in read-only set");
}

#[test]
fn a_refusal_names_the_host_the_rule_and_the_key_to_edit() {
    let denial = denial(judge(&read_only_web(), "web1", "rm -rf /tmp/x"), "rm");
    assert_eq!(
        denial.to_string(),
        "web1 is read-only for this client: `rm -rf /tmp/x` is not in the built-in read-only \
         set (rule policy.hosts.\"web*\".access = \"read-only\"); to allow it here, add \
         [\"rm\"] to policy.hosts.\"web*\".allow_commands, or set \
         policy.hosts.\"web*\".access = \"full\""
    );
    let denial = denial_of(&read_only_web(), "web1", "systemctl restart nginx");
    assert!(
        denial.fix.contains("[\"systemctl\", \"restart\"]"),
        "{denial}"
    );
}

fn denial_of(policy: &Policy, alias: &str, line: &str) -> Denial {
    denial(judge(policy, alias, line), line)
}

#[test]
fn a_full_host_without_lists_runs_anything_without_parsing() {
    let policy = policy("");
    for line in ["rm -rf /tmp/x", "ls 'unterminated", "bash -c 'anything'"] {
        let (confirm, rule) = allowed(judge(&policy, "web1", line), line);
        assert!(!confirm);
        assert!(rule.contains("built-in default"), "{rule}");
    }
}

#[test]
fn a_denied_host_refuses_everything() {
    let policy = policy("[policy.hosts.vault]\naccess = \"deny\"\n");
    let denial = denial_of(&policy, "vault", "ls");
    assert_eq!(denial.rule, "policy.hosts.\"vault\".access = \"deny\"");
    assert!(denial.reason.contains("vault is closed"), "{denial}");
    assert!(
        denial.fix.contains("policy.hosts.\"vault\".access"),
        "{denial}"
    );
    let host = policy.host("vault", &CLAUDE_CODE);
    assert!(host.remote_path("/etc/hostname", false).is_err());
}

#[test]
fn deny_beats_allow_wherever_the_denied_command_hides() {
    let policy = policy(
        "[policy.hosts.db1]\nallow_commands = [[\"systemctl\"]]\n\
         deny_commands = [[\"systemctl\", \"restart\"]]\n",
    );
    allowed(judge(&policy, "db1", "systemctl status x"), "status");
    for line in [
        "systemctl restart x",
        "systemctl --no-pager restart x",
        "sudo systemctl restart x",
        "timeout 5 systemctl restart x",
        "/usr/bin/systemctl restart x",
    ] {
        let denial = denial_of(&policy, "db1", line);
        assert_eq!(
            denial.rule, "policy.hosts.\"db1\".deny_commands [\"systemctl\", \"restart\"]",
            "{line}"
        );
        assert!(denial.reason.contains("db1 denies"), "{denial}");
    }
    for line in [
        "systemctl status $(systemctl restart x)",
        // A file named `restart` would make this `systemctl restart x`.
        "systemctl re* x",
    ] {
        let denial = denial_of(&policy, "db1", line);
        assert!(denial.reason.contains("cannot be checked"), "{denial}");
    }
}

#[test]
fn a_deny_list_on_a_full_host_is_not_talked_around() {
    let policy = policy("[policy.hosts.app]\ndeny_commands = [[\"rm\"]]\n");
    allowed(judge(&policy, "app", "ls > /tmp/listing; make -j4"), "make");
    for (line, words) in [
        ("rm -rf /srv", "app denies `rm -rf /srv`"),
        ("/bin/rm x", "denies"),
        ("./rm x", "denies"),
        ("env rm x", "denies"),
        ("find . -exec rm {} +", "denies `rm {}`"),
        ("xargs rm < /tmp/list", "denies"),
        ("sh -c 'rm x'", "cannot be checked"),
        ("python3 -c 'import shutil'", "cannot be checked"),
        ("echo $(rm x)", "cannot be checked"),
        ("if true; then rm x; fi", "cannot be checked"),
    ] {
        let denial = denial_of(&policy, "app", line);
        assert!(denial.reason.contains(words), "{line}: {denial}");
        assert!(
            denial
                .rule
                .starts_with("policy.hosts.\"app\".deny_commands")
        );
    }
}

#[test]
fn request_level_sudo_meets_a_deny_list_that_names_sudo() {
    let policy = policy("[policy.hosts.app]\ndeny_commands = [[\"sudo\"]]\n");
    let host = policy.host("app", &CLAUDE_CODE);
    assert!(matches!(host.command("ls", false), Verdict::Allow { .. }));
    assert!(matches!(host.command("ls", true), Verdict::Deny(_)));
    assert!(matches!(host.command("sudo ls", false), Verdict::Deny(_)));
}

#[test]
fn allow_commands_on_a_full_host_is_an_allowlist() {
    let policy = policy(
        "[policy.hosts.app]\nallow_commands = [[\"systemctl\", \"status\"], [\"journalctl\"]]\n",
    );
    for line in [
        "systemctl status nginx",
        "journalctl --vacuum-size=1",
        "nice systemctl status nginx",
        "sudo systemctl status nginx",
    ] {
        let (confirm, rule) = allowed(judge(&policy, "app", line), line);
        assert!(!confirm);
        assert_eq!(rule, "policy.hosts.\"app\".allow_commands");
    }
    for (line, words) in [
        ("ls", "`ls` is not in allow_commands"),
        (
            "journalctl -u x | grep y",
            "`grep y` is not in allow_commands",
        ),
        ("systemctl restart nginx", "is not in allow_commands"),
        ("systemctl status x > /tmp/o", "redirection"),
        ("systemctl status $(id)", "command substitution"),
        (
            "env LD_PRELOAD=/tmp/x.so systemctl status",
            "sets `LD_PRELOAD",
        ),
    ] {
        let denial = denial_of(&policy, "app", line);
        assert!(denial.reason.contains(words), "{line}: {denial}");
        assert_eq!(denial.rule, "policy.hosts.\"app\".allow_commands");
    }
}

#[test]
fn allow_commands_on_a_read_only_host_extend_the_built_in_set() {
    let policy = policy(
        "[policy.hosts.web1]\naccess = \"read-only\"\n\
         allow_commands = [[\"systemctl\", \"restart\", \"nginx\"]]\n",
    );
    let (_, rule) = allowed(
        judge(&policy, "web1", "systemctl restart nginx"),
        "restart nginx",
    );
    assert_eq!(rule, "policy.hosts.\"web1\".allow_commands");
    allowed(
        judge(&policy, "web1", "ls -la && systemctl restart nginx"),
        "ls",
    );
    let denial = denial_of(&policy, "web1", "systemctl restart postgresql");
    assert!(denial.reason.contains("changes the system"), "{denial}");
    // An extension does not make its command's own options safe to hide.
    denial_of(&policy, "web1", "systemctl restart nginx > /etc/x");
}

#[test]
fn confirm_commands_ask_for_confirmation_even_through_wrappers() {
    let policy = policy("[policy.hosts.app]\nconfirm_commands = [[\"systemctl\", \"restart\"]]\n");
    for line in ["systemctl restart nginx", "sudo -n systemctl restart nginx"] {
        let (confirm, rule) = allowed(judge(&policy, "app", line), line);
        assert!(confirm, "{line}");
        assert_eq!(
            rule,
            "policy.hosts.\"app\".confirm_commands [\"systemctl\", \"restart\"]"
        );
    }
    let (confirm, _) = allowed(judge(&policy, "app", "rm -rf /tmp/x"), "rm");
    assert!(!confirm);
    let (confirm, rule) = allowed(
        judge(&policy, "app", "bash -c 'systemctl restart nginx'"),
        "bash -c",
    );
    assert!(confirm && rule.contains("cannot be checked"), "{rule}");
}

#[test]
fn confirm_asks_for_everything_that_may_change_the_host() {
    let policy = policy("[policy.hosts.app]\nconfirm = true\n");
    let host = policy.host("app", &CLAUDE_CODE);
    assert!(host.confirms_changes());
    for (line, confirm) in [
        ("ls -la /srv", false),
        ("journalctl -n 5 | grep err", false),
        ("rm x", true),
        ("ls > /tmp/x", true),
        ("echo $(id)", true),
    ] {
        let (asked, rule) = allowed(host.command(line, false), line);
        assert_eq!(asked, confirm, "{line}");
        if confirm {
            assert_eq!(rule, "policy.hosts.\"app\".confirm = true");
        }
    }
}

#[test]
fn an_exact_alias_beats_patterns_and_a_longer_pattern_beats_a_shorter_one() {
    let policy = policy(
        "[policy.hosts.\"*\"]\naccess = \"read-only\"\n\
         [policy.hosts.\"web*\"]\naccess = \"full\"\n\
         [policy.hosts.\"web-prod*\"]\naccess = \"deny\"\n\
         [policy.hosts.\"web-prod-1\"]\naccess = \"full\"\n",
    );
    let access = |alias: &str| {
        let host = policy.host(alias, &CLAUDE_CODE);
        (host.access, host.rule)
    };
    assert_eq!(
        access("web-prod-1"),
        (
            Access::Full,
            "policy.hosts.\"web-prod-1\".access = \"full\"".into()
        )
    );
    assert_eq!(access("web-prod-2").0, Access::Deny);
    assert_eq!(access("web3").0, Access::Full);
    assert_eq!(
        access("db1"),
        (
            Access::ReadOnly,
            "policy.hosts.\"*\".access = \"read-only\"".into()
        )
    );
}

#[test]
fn a_caller_rule_makes_a_host_read_only_for_that_client_only() {
    let policy =
        policy("[[policy.callers]]\nmcp_client = \"claude-desktop\"\naccess = \"read-only\"\n");
    let desktop = CallerId {
        mcp_client: Some("claude-desktop"),
        executable: "/usr/bin/sshmcp",
    };
    let denial = match policy.host("web1", &desktop).command("rm x", false) {
        Verdict::Deny(denial) => denial,
        other => panic!("{other:?}"),
    };
    assert_eq!(denial.rule, "policy.callers[0].access = \"read-only\"");
    assert!(denial.fix.contains("policy.callers[0]"), "{denial}");
    allowed(judge(&policy, "web1", "rm x"), "claude-code");
    let anonymous = CallerId {
        mcp_client: None,
        executable: "/usr/bin/sshmcp",
    };
    allowed(
        policy.host("web1", &anonymous).command("rm x", false),
        "none",
    );
}

#[test]
fn caller_rules_match_by_executable_and_host_and_only_ever_lower_access() {
    let policy = policy(
        "[policy.hosts.db1]\naccess = \"read-only\"\n\
         [[policy.callers]]\nexecutable = \"/opt/agents/*\"\nhosts = [\"db*\"]\naccess = \"deny\"\n\
         [[policy.callers]]\nmcp_client = \"*\"\naccess = \"full\"\n",
    );
    let agent = CallerId {
        mcp_client: Some("claude-code"),
        executable: "/opt/agents/bin/run",
    };
    assert_eq!(policy.host("db1", &agent).access, Access::Deny);
    assert_eq!(policy.host("web1", &agent).access, Access::Full);
    assert_eq!(policy.host("db1", &CLAUDE_CODE).access, Access::ReadOnly);
}

#[test]
fn a_caller_imposed_read_only_ignores_the_host_extensions_and_keeps_its_allowlist() {
    let policy = policy(
        "[policy.hosts.web1]\naccess = \"read-only\"\nallow_commands = [[\"systemctl\", \"restart\"]]\n\
         [policy.hosts.app]\nallow_commands = [[\"systemctl\"]]\n\
         [[policy.callers]]\nmcp_client = \"claude-code\"\naccess = \"read-only\"\n",
    );
    denial_of(&policy, "web1", "systemctl restart nginx");
    denial_of(&policy, "app", "systemctl restart nginx");
    allowed(judge(&policy, "app", "systemctl status nginx"), "status");
    let denial = denial_of(&policy, "app", "ls");
    assert!(denial.reason.contains("not in allow_commands"), "{denial}");
}

#[test]
fn remote_paths_are_bounded_component_by_component() {
    let policy = policy(
        "[policy.hosts.app]\nremote_roots = [\"/srv/app\", \"/var/log\"]\n\
         remote_deny = [\"/srv/app/secrets\"]\n",
    );
    let host = policy.host("app", &CLAUDE_CODE);
    for path in [
        "/srv/app",
        "/srv/app/",
        "/srv/app/current/config.yml",
        "/var/log/syslog",
    ] {
        assert_eq!(host.remote_path(path, true), Ok(()), "{path}");
    }
    let denial = host.remote_path("/srv/app2/x", false).unwrap_err();
    assert_eq!(denial.rule, "policy.hosts.\"app\".remote_roots");
    assert!(
        denial.reason.contains("outside the remote roots"),
        "{denial}"
    );
    let denial = host.remote_path("/srv/app/secrets/key", false).unwrap_err();
    assert_eq!(
        denial.rule,
        "policy.hosts.\"app\".remote_deny [\"/srv/app/secrets\"]"
    );
    assert!(host.remote_path("/srv/app/secrets", false).is_err());
    assert_eq!(host.remote_path("/srv/app/secrets2", false), Ok(()));
    assert!(
        host.remote_path("/srv/app/../../etc/shadow", false)
            .is_err()
    );
    assert!(host.remote_path("srv/app/x", false).is_err());
}

#[test]
fn a_read_only_host_refuses_remote_writes_but_not_reads() {
    let policy = read_only_web();
    let host = policy.host("web1", &CLAUDE_CODE);
    assert_eq!(host.remote_path("/etc/hostname", false), Ok(()));
    let denial = host.remote_path("/etc/hostname", true).unwrap_err();
    assert!(denial.reason.contains("web1 is read-only"), "{denial}");
    assert!(denial.fix.contains("access = \"full\""), "{denial}");
}
