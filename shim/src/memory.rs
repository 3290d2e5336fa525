//! Keeps the long-lived shim small: when it goes quiet after a burst of work (start-up, a task
//! RPC), it drops the file-backed pages of code and read-only data that the work touched. Only
//! mappings without a single private (copy-on-write) page are released, so nothing is lost:
//! a page needed again is faulted back in from the page cache. It also gives the allocator's
//! free pages back, and keeps every thread on one malloc arena (see [`one_arena`]).
use std::fs;
use std::sync::OnceLock;

/// The clean read-only file mappings, found once: the set is fixed after start-up (nothing is
/// loaded later), and the release itself must touch as little code as possible, or the kernel's
/// fault-around maps back 64 KiB around every page it runs.
static CLEAN: OnceLock<Vec<(usize, usize)>> = OnceLock::new();

/// Puts every thread of the process on the main malloc arena. glibc gives each new thread
/// that allocates an arena of its own (up to 8 per core), and each arena keeps its touched
/// pages: with a dozen mostly idle threads that was a sixth of an idle shim's memory. The
/// shim allocates little and rarely at once, so one arena costs no measurable contention.
/// Call before the first thread is spawned.
pub fn one_arena() {
    // SAFETY: mallopt only sets an allocator parameter.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the allocator's free memory to the kernel: the top of the heap and the free pages
/// inside it (glibc's `malloc_trim` madvises those away). Live allocations are untouched.
fn trim_heap() {
    // SAFETY: malloc_trim only releases memory malloc holds free.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases the resident pages of clean read-only file mappings, after giving the heap's free
/// pages back; returns how many mappings.
pub fn release_clean_file_pages() -> usize {
    trim_heap();
    let ranges = CLEAN.get_or_init(clean_mappings);
    let mut released = 0;
    for &(start, end) in ranges {
        // SAFETY: a read-only file mapping with no private pages holds only clean page cache
        // pages; MADV_DONTNEED unmaps them and they fault back in on use.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) }
            == 0
        {
            released += 1;
        }
    }
    released
}

fn clean_mappings() -> Vec<(usize, usize)> {
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(range) = mapping_header(line) {
            current = range;
        } else if let Some(anon) = line.strip_prefix("Anonymous:") {
            let clean = anon.trim().trim_end_matches("kB").trim() == "0";
            if let (Some(range), true) = (current.take(), clean) {
                found.push(range);
            }
        }
    }
    found
}

/// For a mapping header line of a read-only private file mapping, its address range.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let read_only = perms == "r-xp" || perms == "r--p";
    Some((read_only && path.starts_with('/')).then_some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages malloc holds free (a big allocation's, freed) go back to the kernel at a release.
    #[test]
    fn releasing_gives_freed_heap_pages_back() {
        let resident = || {
            let s = fs::read_to_string("/proc/self/smaps_rollup").unwrap();
            let line = s.lines().find(|l| l.starts_with("Anonymous:")).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        // Many small chunks (below the mmap threshold, so they come from the heap), touched,
        // then freed except the last, which keeps the heap's top from being trimmed anyway.
        let mut chunks: Vec<Vec<u8>> = (0..2048).map(|_| vec![1u8; 4000]).collect();
        let keep = chunks.pop();
        drop(chunks);
        let before = resident();
        release_clean_file_pages();
        let after = resident();
        drop(keep);
        assert!(
            before >= after + 4 * 1024,
            "freed heap pages stayed resident: {before} KiB before the release, {after} KiB after"
        );
    }

    #[test]
    fn releasing_keeps_the_process_working() {
        assert!(release_clean_file_pages() > 0);
        // Code and relocated data still work after their pages went away.
        let v: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
        assert_eq!(v[42], "42");
        assert!(release_clean_file_pages() > 0);
    }

    #[test]
    fn headers_select_read_only_file_mappings() {
        let text = "55d0a000-55d0b000 r-xp 00001000 08:01 42 /usr/bin/x";
        assert_eq!(mapping_header(text), Some(Some((0x55d0a000, 0x55d0b000))));
        let data = "55d0c000-55d0d000 rw-p 00003000 08:01 42 /usr/bin/x";
        assert_eq!(mapping_header(data), Some(None));
        assert_eq!(mapping_header("Rss:   4 kB"), None);
    }
}
