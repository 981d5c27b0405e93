//! Fuzz the DATA receiver: any input, any split, never a panic; what it
//! consumes never exceeds what it was given, and the output never exceeds
//! the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailstow_proto::data::DataReceiver;

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else { return };
    let mut r = DataReceiver::new(1000);
    let mut out = Vec::new();
    let mut total = 0;
    for chunk in input.chunks(usize::from(split).max(1)) {
        let (used, done) = r.feed(chunk, &mut out);
        assert!(used <= chunk.len());
        assert!(out.len() <= 1000);
        total += used;
        if done {
            // The terminator ".\r\n" was consumed: three bytes at least.
            assert!(total >= 3);
            break;
        }
    }
});
