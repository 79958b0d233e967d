//! `tokend completions bash|zsh|fish` and `tokend man`: generated from the clap definitions,
//! so they never drift from the flags the binary accepts.

use std::io::Write;

use clap::CommandFactory;

use super::Cli;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), String> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "tokend", &mut out);
    write_stdout(&out)
}

/// Writes the man page (roff) to stdout: tokend(1) with every subcommand's section.
pub fn man() -> Result<(), String> {
    let command = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut out)
        .map_err(|e| e.to_string())?;
    // One page: each subcommand (and its verbs) follows as a section of its own.
    render_subcommands(&command, "tokend", &mut out)?;
    write_stdout(&out)
}

fn render_subcommands(parent: &clap::Command, path: &str, out: &mut Vec<u8>) -> Result<(), String> {
    for sub in parent.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{path} {}", sub.get_name());
        writeln!(out, ".SH \"{}\"", name.to_uppercase()).map_err(|e| e.to_string())?;
        let page = clap_mangen::Man::new(
            sub.clone()
                .display_name(name.clone())
                .bin_name(name.clone()),
        );
        page.render_synopsis_section(out)
            .map_err(|e| e.to_string())?;
        page.render_description_section(out)
            .map_err(|e| e.to_string())?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            page.render_options_section(out)
                .map_err(|e| e.to_string())?;
        }
        render_subcommands(sub, &name, out)?;
    }
    Ok(())
}

/// A closed pipe (`tokend man | head`) is not an error worth a message.
fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}
