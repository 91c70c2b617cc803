//! The broker's resident memory and CPU time, read from `/proc/PID/status` and
//! `/proc/PID/stat`.

use std::io;

/// One reading of a process's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status` of `pid`.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let bad =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}: {what}"));
    Ok(ProcSample {
        cpu_ticks: parse_cpu_ticks(&stat).ok_or_else(|| bad("no utime/stime in stat"))?,
        rss_kib: parse_vm_rss_kib(&status).ok_or_else(|| bad("no VmRSS in status"))?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of [`ProcSample::cpu_ticks`].
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// `utime + stime` (fields 14 and 15) in clock ticks from the text of `/proc/PID/stat`.
///
/// The second field, the command name, is in parentheses and may itself hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first; utime is field 14, stime field 15.
    let mut fields = after.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tmosquitto\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t   12345 kB\nVmRSS:\t    6789 kB\nRssAnon:\t    1000 kB\n";

    #[test]
    fn rss_from_status() {
        assert_eq!(parse_vm_rss_kib(STATUS), Some(6789));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn cpu_from_stat_with_awkward_name() {
        // Field 14 (utime) = 250, field 15 (stime) = 75; the name holds ") (" and spaces.
        let stat = "4242 (we ird) (name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 \
            3 0 100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0);
        assert!(clock_ticks_per_second() > 0);
    }
}
