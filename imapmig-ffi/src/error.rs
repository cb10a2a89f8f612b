//! The error object, the panic guard every entry point runs in, and the pointer and string
//! helpers that check what C hands in.

use std::any::Any;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::status::{imapmig_status, Failure};

/// An error: a status, a message and whether a retry may succeed. Created by the library
/// (through an `imapmig_error **err` argument), owned by the caller, freed with
/// `imapmig_error_free`.
pub struct imapmig_error {
    status: imapmig_status,
    message: CString,
    transient: bool,
}

impl imapmig_error {
    fn boxed(f: Failure) -> *mut imapmig_error {
        // A NUL inside a message (from a server's words) would cut it short in C.
        let message = CString::new(f.message.replace('\0', "\u{FFFD}")).unwrap_or_default();
        Box::into_raw(Box::new(imapmig_error {
            status: f.status,
            message,
            transient: f.transient,
        }))
    }
}

/// The text of a caught panic.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs an entry point: no panic crosses the boundary, a failure becomes a status and (when
/// `err` is not NULL) an error object in `*err`. `*err` is set to NULL first.
///
/// # Safety
/// `err` is NULL or valid for writing one pointer.
pub(crate) unsafe fn guard<F>(err: *mut *mut imapmig_error, body: F) -> imapmig_status
where
    F: FnOnce() -> Result<imapmig_status, Failure>,
{
    if !err.is_null() {
        // SAFETY: the caller promises `err` is writable when it is not NULL.
        unsafe { err.write(ptr::null_mut()) };
    }
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => return status,
        Ok(Err(f)) => f,
        Err(payload) => Failure::new(
            imapmig_status::Panic,
            format!("internal panic: {}", panic_text(payload.as_ref())),
        ),
    };
    let status = failure.status;
    if !err.is_null() {
        // SAFETY: as above.
        unsafe { err.write(imapmig_error::boxed(failure)) };
    }
    status
}

/// Runs an infallible accessor: a panic gives `fallback`.
pub(crate) fn guard_value<T, F: FnOnce() -> T>(fallback: T, body: F) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The UTF-8 string behind a C string argument.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string valid for the duration of the call.
pub(crate) unsafe fn str_arg<'a>(s: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if s.is_null() {
        return Err(Failure::new(
            imapmig_status::InvalidArgument,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| {
        Failure::new(
            imapmig_status::InvalidArgument,
            format!("{name} is not UTF-8"),
        )
    })
}

/// Checks that an out-pointer is not NULL and sets what it points to to NULL.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
pub(crate) unsafe fn out_arg<T>(out: *mut *mut T, name: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            imapmig_status::InvalidArgument,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: checked not NULL; the caller promises it is writable.
    unsafe { out.write(ptr::null_mut()) };
    Ok(())
}

/// A Rust string as a C string the caller frees with `imapmig_string_free`.
pub(crate) fn c_string(s: String) -> *mut c_char {
    CString::new(s.replace('\0', "\u{FFFD}"))
        .unwrap_or_default()
        .into_raw()
}

/// Frees an error object. NULL is ignored.
///
/// # Safety
/// `err` is NULL or an error this library returned, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn imapmig_error_free(err: *mut imapmig_error) {
    guard_value((), || {
        if !err.is_null() {
            // SAFETY: the caller passes an error from `Box::into_raw`, once.
            drop(unsafe { Box::from_raw(err) });
        }
    })
}

/// The error's status (`IMAPMIG_STATUS_INVALID_ARGUMENT` for NULL).
///
/// # Safety
/// `err` is NULL or a live error object.
#[no_mangle]
pub unsafe extern "C" fn imapmig_error_status(err: *const imapmig_error) -> imapmig_status {
    guard_value(imapmig_status::Panic, || {
        // SAFETY: the caller passes NULL or a live error.
        match unsafe { err.as_ref() } {
            Some(e) => e.status,
            None => imapmig_status::InvalidArgument,
        }
    })
}

/// The error's message: UTF-8, NUL-terminated, owned by the error (valid until
/// `imapmig_error_free`; do not free it). A static text for NULL.
///
/// # Safety
/// `err` is NULL or a live error object.
#[no_mangle]
pub unsafe extern "C" fn imapmig_error_message(err: *const imapmig_error) -> *const c_char {
    guard_value(c"internal panic".as_ptr(), || {
        // SAFETY: the caller passes NULL or a live error.
        match unsafe { err.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => c"no error (NULL error object)".as_ptr(),
        }
    })
}

/// Whether retrying later may succeed (a dropped connection, throttling): 1 or 0.
///
/// # Safety
/// `err` is NULL or a live error object.
#[no_mangle]
pub unsafe extern "C" fn imapmig_error_is_transient(err: *const imapmig_error) -> i32 {
    guard_value(0, || {
        // SAFETY: the caller passes NULL or a live error.
        i32::from(unsafe { err.as_ref() }.is_some_and(|e| e.transient))
    })
}

/// The C name of a status (`"IMAPMIG_STATUS_TLS"`): a static string, never NULL
/// (`"IMAPMIG_STATUS_UNKNOWN"` for a number that is not a status).
#[no_mangle]
pub extern "C" fn imapmig_status_name(status: i32) -> *const c_char {
    guard_value(c"IMAPMIG_STATUS_UNKNOWN".as_ptr(), || {
        imapmig_status::from_raw(status)
            .map_or(c"IMAPMIG_STATUS_UNKNOWN".as_ptr(), |s| s.name().as_ptr())
    })
}

/// A one-line English description of a status: a static string, never NULL.
#[no_mangle]
pub extern "C" fn imapmig_status_description(status: i32) -> *const c_char {
    guard_value(c"unknown status".as_ptr(), || {
        imapmig_status::from_raw(status)
            .map_or(c"unknown status".as_ptr(), |s| s.description().as_ptr())
    })
}

/// Frees a string this library returned (`char *` out-parameters). NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string this library returned, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn imapmig_string_free(s: *mut c_char) {
    guard_value((), || {
        if !s.is_null() {
            // SAFETY: the caller passes a string from `CString::into_raw`, once.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}
