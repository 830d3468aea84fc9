//! The replay journal: every request id the gateway accepts is appended to
//! a file in its data directory before the reply starts, so that after a
//! restart the replay window still knows them ([`ReplayWindow::restore`])
//! and need not refuse every request stamped before the restart (which
//! refused devices whose clock is a little behind).
//!
//! Each id is written with one `write(2)` and no `fsync`: if the process is
//! killed the kernel still has it. Only a crash of the whole machine can
//! lose the last lines, so the journal is trusted only within the same boot
//! (the kernel's boot id is in its header); after a reboot the window starts
//! from the gateway's start time, as without a journal.
//!
//! Format (text): a header line `hearth-replay-journal v1 boot=<id> since=<unix>`,
//! where `since` is the time from which every accepted id is in the file,
//! then one line `<forget_at> <request_id>` per accepted id.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hearth_e2ee::ReplayWindow;

const MAGIC: &str = "hearth-replay-journal v1";
/// Rewrite the file once it has this many lines more than the window holds.
const COMPACT_AFTER: usize = 100_000;

/// What a journal file says. Pure parse.
#[derive(Debug, PartialEq, Eq)]
pub struct Contents {
    /// The boot it was written in.
    pub boot: String,
    /// From when it holds every accepted id.
    pub since: i64,
    /// `(forget_at, request_id)` per accepted id.
    pub accepted: Vec<(i64, String)>,
}

/// Reads a journal's text; `None` when it is not one (it is then ignored).
pub fn parse(text: &str) -> Option<Contents> {
    let mut lines = text.lines();
    let header = lines.next()?.strip_prefix(MAGIC)?.trim();
    let mut boot = None;
    let mut since = None;
    for field in header.split_whitespace() {
        match field.split_once('=') {
            Some(("boot", value)) => boot = Some(value.to_owned()),
            Some(("since", value)) => since = value.parse().ok(),
            _ => {}
        }
    }
    let accepted = lines
        .filter_map(|line| {
            let (forget_at, id) = line.split_once(' ')?;
            Some((forget_at.parse().ok()?, id.to_owned()))
        })
        .collect();
    Some(Contents {
        boot: boot?,
        since: since?,
        accepted,
    })
}

/// The kernel's boot id, or `None` where it cannot be read.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
}

/// An open journal.
pub struct Journal {
    path: PathBuf,
    boot: Option<String>,
    since: i64,
    file: Option<std::fs::File>,
    lines: usize,
}

impl Journal {
    /// Opens the journal at `path` and the replay window it restores: with
    /// `window` seconds of skew and `capacity` ids, at time `now`.
    pub fn open(
        path: &Path,
        window: i64,
        capacity: usize,
        now: i64,
    ) -> std::io::Result<(Journal, ReplayWindow)> {
        let boot = boot_id();
        let previous = std::fs::read_to_string(path)
            .ok()
            .as_deref()
            .and_then(parse)
            .filter(|contents| boot.as_ref() == Some(&contents.boot) && contents.since <= now);
        let since = previous.as_ref().map_or(now, |contents| contents.since);
        let mut replay = ReplayWindow::new(window, since, capacity);
        for (forget_at, id) in previous.iter().flat_map(|contents| &contents.accepted) {
            replay.restore(id, *forget_at, now);
        }
        let mut journal = Journal {
            path: path.to_owned(),
            boot,
            since,
            file: None,
            lines: 0,
        };
        journal.rewrite(&replay)?;
        Ok((journal, replay))
    }

    /// Writes the file afresh with what `replay` remembers.
    fn rewrite(&mut self, replay: &ReplayWindow) -> std::io::Result<()> {
        let Some(boot) = &self.boot else {
            // Without a boot id the journal could not be trusted later: keep none.
            self.file = None;
            return Ok(());
        };
        let mut text = format!("{MAGIC} boot={boot} since={}\n", self.since);
        let mut lines = 0;
        for (forget_at, id) in replay.accepted() {
            text.push_str(&format!("{forget_at} {id}\n"));
            lines += 1;
        }
        let fresh = self.path.with_extension("journal-new");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&fresh)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&fresh, &self.path)?;
        self.file = Some(std::fs::OpenOptions::new().append(true).open(&self.path)?);
        self.lines = lines;
        Ok(())
    }

    /// Records an id the window just accepted (called under the window's
    /// lock, before the reply starts). A failed write is logged: the
    /// journal then restarts from `now` on the next start.
    pub fn accepted(&mut self, request_id: &str, forget_at: i64, replay: &ReplayWindow) {
        let Some(file) = &mut self.file else { return };
        if let Err(error) = file.write_all(format!("{forget_at} {request_id}\n").as_bytes()) {
            tracing::warn!(%error, "cannot write the replay journal");
            self.file = None;
            return;
        }
        self.lines += 1;
        if self.lines > replay.len() + COMPACT_AFTER
            && let Err(error) = self.rewrite(replay)
        {
            tracing::warn!(%error, "cannot compact the replay journal");
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journals_are_read_back_and_junk_is_ignored() {
        let text =
            "hearth-replay-journal v1 boot=abc since=900\n1000 aaaa\nnot a line\n1005 bbbb\n";
        assert_eq!(
            parse(text),
            Some(Contents {
                boot: "abc".into(),
                since: 900,
                accepted: vec![(1000, "aaaa".into()), (1005, "bbbb".into())],
            })
        );
        assert_eq!(parse("something else\n"), None);
        assert_eq!(parse("hearth-replay-journal v1 since=900\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_restart_keeps_the_ids_and_the_coverage() {
        if boot_id().is_none() {
            return; // no /proc here: the journal is off, as in production
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.journal");
        // Started at 900; a request at 1000.
        let (mut journal, mut replay) = Journal::open(&path, 60, 100, 900).unwrap();
        replay.check("first", 999, 1000).unwrap();
        journal.accepted("first", ReplayWindow::forget_at(999, 1000), &replay);
        drop(journal);
        let (_, mut restarted) = Journal::open(&path, 60, 100, 1010).unwrap();
        assert_eq!(
            restarted.not_before(),
            900,
            "coverage goes back to the first start"
        );
        assert_eq!(
            restarted.check("first", 999, 1010),
            Err(hearth_e2ee::Rejection::Replayed)
        );
        assert_eq!(restarted.check("behind", 995, 1010), Ok(()));
        // Another boot's journal is not trusted.
        std::fs::write(
            &path,
            "hearth-replay-journal v1 boot=other since=100\n1000 x\n",
        )
        .unwrap();
        let (_, fresh) = Journal::open(&path, 60, 100, 1010).unwrap();
        assert_eq!(fresh.not_before(), 1010);
    }
}
