use std::collections::BTreeMap;

use clap::CommandFactory;

use super::*;

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

/// Flags whose default differs between commands, and why. Everything else about a flag (its
/// short form, value name, help and default) must be the same in every command that takes it.
const DEFAULTS_THAT_DIFFER: &[(&str, &str, &str)] = &[
    ("discover", "duration", "a census is a burst: 5 probes, 20 ms apart"),
    ("discover", "timeout", "the acks of a burst on a LAN come within half a second"),
    ("demo", "rate", "a demo of a few seconds still measures hundreds of probes"),
    ("demo", "duration", "a demo should be over in a few seconds"),
    ("mesh", "duration", "every host must have started before the first one stops"),
];

/// Flags whose help differs between commands, and why: the same meaning, said for that command.
const HELP_THAT_DIFFERS: &[(&str, &str, &str)] = &[
    ("report", "out", "report writes report.html (and matrix.csv) from folders other runs wrote"),
    ("doctor", "iface", "doctor checks one interface, which must be named: no default to describe"),
    ("watch", "groups", "watch's streams have no default port: the list needs its :PORT"),
    ("watch", "duration", "watch sends nothing: it watches until Ctrl-C, and a capture is read whole"),
    ("max-groups", "json", "max-groups writes no --out folder: its help cannot point at report.json"),
];

/// What a flag is, as a user meets it in one command.
#[derive(Debug)]
struct Meaning {
    short: Option<char>,
    value_names: Vec<String>,
    /// `None` when listed in [`HELP_THAT_DIFFERS`].
    help: Option<String>,
}

impl PartialEq for Meaning {
    fn eq(&self, o: &Meaning) -> bool {
        let help = match (&self.help, &o.help) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.short == o.short && self.value_names == o.value_names && help
    }
}

/// A flag in one command: the command, the meaning, the defaults (unless allowed to differ).
type Use = (String, Meaning, Option<Vec<String>>);

#[test]
fn one_flag_one_meaning() {
    let mut flags: BTreeMap<String, Vec<Use>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut allowed_used = vec![false; DEFAULTS_THAT_DIFFER.len()];
    for cmd in Cli::command().get_subcommands() {
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long().filter(|l| !matches!(*l, "help" | "version")) else { continue };
            let allowed = DEFAULTS_THAT_DIFFER.iter().position(|(c, f, _)| *c == cmd.get_name() && *f == long);
            if let Some(i) = allowed {
                allowed_used[i] = true;
            }
            let own_help = HELP_THAT_DIFFERS.iter().any(|(c, f, _)| *c == cmd.get_name() && *f == long);
            let meaning = Meaning {
                short: arg.get_short(),
                value_names: arg.get_value_names().unwrap_or_default().iter().map(|s| s.to_string()).collect(),
                help: (!own_help)
                    .then(|| arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default()),
            };
            let defaults = allowed
                .is_none()
                .then(|| arg.get_default_values().iter().map(|d| d.to_string_lossy().into_owned()).collect());
            flags.entry(long.to_string()).or_default().push((cmd.get_name().to_string(), meaning, defaults));
        }
    }
    for (long, uses) in &flags {
        let (first, m, _) = &uses[0];
        for (cmd, other, _) in &uses[1..] {
            if other != m {
                problems.push(format!("--{long}: in {first} {m:?}\n      in {cmd} {other:?}"));
            }
        }
        let mut defaults = uses.iter().filter_map(|(cmd, _, d)| Some((cmd, d.as_ref()?)));
        if let Some((first, d)) = defaults.next() {
            for (cmd, other) in defaults.filter(|(_, o)| *o != d) {
                problems.push(format!("--{long}: default {d:?} in {first}, {other:?} in {cmd}"));
            }
        }
    }
    // Short forms: one letter, one long flag.
    let mut shorts: BTreeMap<char, &str> = BTreeMap::new();
    for (long, uses) in &flags {
        for c in uses.iter().filter_map(|(_, m, _)| m.short) {
            if let Some(other) = shorts.insert(c, long).filter(|o| o != long) {
                problems.push(format!("-{c} is both --{other} and --{long}"));
            }
        }
    }
    for (i, used) in allowed_used.iter().enumerate() {
        if !used {
            problems.push(format!("allow-list entry {:?} matches no flag", DEFAULTS_THAT_DIFFER[i]));
        }
    }
    assert!(problems.is_empty(), "flags with two meanings:\n{}", problems.join("\n"));
}

/// `--help` of the program and of each command, as a user sees it at 100 columns.
fn help(path: &[&str]) -> String {
    let mut cmd = Cli::command().term_width(100);
    cmd.build();
    let mut c = &mut cmd;
    for name in path {
        c = c.find_subcommand_mut(name).expect("a subcommand");
    }
    c.render_long_help().to_string()
}

#[test]
fn help_pages() {
    insta::assert_snapshot!("mcprobe", help(&[]));
    for cmd in Cli::command().get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help") {
        insta::assert_snapshot!(cmd.clone(), help(&[&cmd]));
    }
}

#[test]
fn a_negative_number_is_refused_by_its_flag() {
    let cases: &[&[&str]] = &[
        &["probe", "--count", "-1"],
        &["probe", "--ttl", "-1"],
        &["probe", "--size", "-1"],
        &["probe", "--port", "-1"],
        &["probe", "--min-hosts", "-1"],
        &["respond", "--rate-limit", "-5"],
        &["respond", "--total-rate-limit", "-1"],
        &["watch", "--min-rate", "-5"],
        &["demo", "--responders", "-1"],
        &["max-rate", "--max-trials", "-1"],
    ];
    for args in cases {
        let argv = std::iter::once("mcprobe").chain(args.iter().copied());
        let e = Cli::try_parse_from(argv).unwrap_err().to_string();
        let (flag, value) = (args[1], args[2]);
        assert!(e.contains(flag) && e.contains(value) && !e.contains("unexpected argument"), "{args:?}: {e}");
    }
}

#[test]
fn help_texts_fit_a_100_column_terminal_unwrapped() {
    // An example wrapped onto a second line cannot be pasted: every line of the texts after the
    // options (examples, exit codes) fits in 100 columns as written.
    let mut cmd = Cli::command();
    cmd.build();
    let mut long = Vec::new();
    for c in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
        for line in c.get_after_help().map(|h| h.to_string()).unwrap_or_default().lines() {
            if line.chars().count() > 100 {
                long.push(format!("{}: {line}", c.get_name()));
            }
        }
    }
    assert!(long.is_empty(), "lines over 100 columns:\n{}", long.join("\n"));
}
