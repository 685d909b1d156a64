//! What a tracked responder costs the prober, measured on the heap: the run's accounting for
//! 1000 responders, every RTT up to the 1 s timeout, counted by a global allocator that adds up
//! live bytes. It covers everything the run keeps per responder (its `HostStats`, the id map,
//! the acks of open probes), not only the histograms the unit tests size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};

use mcprobe::stats::{AckOutcome, Run, RunConfig};
use mcprobe::wire::Ack;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MS: u64 = 1_000_000;
const RESPONDERS: u64 = 1000;

/// The only test of this binary: nothing else allocates while it measures.
#[test]
fn a_tracked_responder_costs_at_most_32_kib_with_a_1_s_timeout() {
    let timeout_ns = 1000 * MS;
    let cfg = RunConfig {
        session: 7,
        timeout_ns,
        interval_ns: 1000 * MS,
        intervals: false,
        plain: false,
        outage_min: 3,
        groups: 1,
        raw: false,
    };
    let from: SocketAddr = "127.0.0.1:24242".parse().unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    let mut run = Run::new(cfg);
    // 10 probes/s for 30 s; each responder's RTTs sweep from 20 µs to the timeout, so both its
    // histograms see their whole range, and the run holds the acks of a timeout's worth of probes.
    let probes = 300u64;
    let mut on_time = 0u64;
    for seq in 0..probes {
        let tx_ns = 1_000_000 * MS + seq * 100 * MS;
        run.record_send(tx_ns);
        for id in 1..=RESPONDERS {
            let rtt_ns = (20_000u64 << ((seq + id) % 16)).min(timeout_ns);
            let ack = Ack {
                session: 7,
                seq,
                tx_ns,
                responder: id,
                dwell_ns: 10_000,
                received: seq as u32 + 1,
                ack_seq: seq as u32,
                name: format!("sim-{id:04}"),
                ..Ack::default()
            };
            on_time += u64::from(run.on_ack(&ack, from, tx_ns + rtt_ns) == AckOutcome::OnTime);
        }
        run.finalize_older_than(tx_ns, timeout_ns + 50 * MS);
    }
    let live = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(on_time, probes * RESPONDERS, "every ack on time");
    assert_eq!(run.hosts().len() as u64, RESPONDERS);
    let per_responder = live as f64 / RESPONDERS as f64 / 1024.0;
    println!("heap per tracked responder: {per_responder:.1} KiB ({live} bytes for {RESPONDERS})");
    assert!(per_responder <= 32.0, "{per_responder:.1} KiB per responder");
}
