//! Teardown of the worlds a test binary shares: libtest never drops a `static`, so a shared world (leaked once,
//! used by every test of the binary) is dropped here when the process exits normally (libtest returns from main
//! or calls exit). Without it the world's servers would die with the process, but its files would stay.

use std::sync::{Mutex, Once};

type Task = Box<dyn FnOnce() + Send>;

static TASKS: Mutex<Vec<Task>> = Mutex::new(Vec::new());

/// Drops `value`, the leaked `Box` of a shared world, at process exit (the last registered first).
pub(crate) fn drop_at_exit<T: Send + Sync + 'static>(value: &'static T) {
    let addr = value as *const T as usize;
    let task: Task = Box::new(move || {
        // SAFETY: addr is the address of a Box leaked by the caller and registered exactly once; the task runs
        // once, at exit, when no test thread uses the value any more.
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
}

extern "C" fn run() {
    let tasks = std::mem::take(&mut *TASKS.lock().unwrap_or_else(|p| p.into_inner()));
    for task in tasks.into_iter().rev() {
        // A panicking drop must not unwind out of an atexit handler.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
    }
}
