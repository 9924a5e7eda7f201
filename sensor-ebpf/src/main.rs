//! modelwatch's kernel side: tracepoint programs that forward only candidate events
//! (model-sized or model-named files, runtimes' listeners, execs) into one ring buffer.
//! Everything that userspace can decide is decided there.
#![no_std]
#![no_main]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
#![allow(
    clippy::needless_pass_by_value,
    reason = "the tracepoint macro hands programs their context by value"
)]

mod bounds;
mod emit;
mod kernel;
mod maps;
mod names;
mod offsets;
mod path;
mod probes;
mod reads;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // NB: no program may reach a panic: the verifier rejects the endless loop below if
    // it is reachable, so a missed bounds check fails loudly at load time.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
