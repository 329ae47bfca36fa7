//! Teardown of the worlds a test binary shares: libtest never drops a `static`, so a shared world (leaked once,
//! used by every test of the binary) is dropped here when the process exits normally (libtest returns from main
//! or calls exit). Without it the world's servers would die with the process, but its files would stay.

use std::sync::{Mutex, Once};

type Task = Box<dyn FnOnce() + Send>;

static TASKS: Mutex<Vec<Task>> = Mutex::new(Vec::new());

/// Leaks `value` for the rest of the process (a world every test of the binary shares) and drops it at exit (the
/// last registered first). Taking the value itself, not a reference, is what makes the drop at exit sound: the
/// pointer freed there can only be the one leaked here, once.
pub(crate) fn leak_until_exit<T: Send + Sync + 'static>(value: T) -> &'static T {
    let leaked: &'static T = Box::leak(Box::new(value));
    let addr = leaked as *const T as usize;
    let task: Task = Box::new(move || {
        // SAFETY: addr comes from Box::leak just above and this task, which runs at most once (it is taken out of
        // TASKS), is the only place that frees it; at exit the test threads have returned. A detached thread still
        // running at exit and touching the world is the one hazard left, as with any static torn down at exit.
        #[allow(unsafe_code)]
        let value = unsafe { Box::from_raw(addr as *mut T) };
        drop(value);
    });
    TASKS.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: atexit(3) with a function that takes no arguments and does not unwind.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::atexit(run) };
        if rc != 0 {
            eprintln!("pgrator-world: atexit failed; the world's processes die with this one, its files stay");
        }
    });
    leaked
}

extern "C" fn run() {
    let tasks = std::mem::take(&mut *TASKS.lock().unwrap_or_else(|p| p.into_inner()));
    for task in tasks.into_iter().rev() {
        // A panicking drop must not unwind out of an atexit handler.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
    }
}
