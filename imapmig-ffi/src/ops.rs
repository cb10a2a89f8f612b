//! The one-shot operations: check, analyze, verify. JSON configuration in, JSON result out.
//!
//! Each calls the same function of imapmig-core as `imapmig check|analyze|verify --json`, so
//! the JSON has the same fields.

use std::ffi::c_char;

use imapmig_core::engine::{self, Side};
use serde_json::Value;

use crate::config::Config;
use crate::error::{c_string, guard, imapmig_error, out_arg, str_arg};
use crate::runtime::block_on;
use crate::status::{imapmig_status, Failure};

/// Connects to and logs in to the source and/or destination servers; a list of results.
pub fn check(config: &Config) -> Result<Value, Failure> {
    let (src, dst) = (config.source_account(), config.destination_account());
    if src.is_none() && dst.is_none() {
        return Err(Failure::config(
            "configuration: check needs a server as \"source\" and/or \"destination\"",
        ));
    }
    let pop3 = config.source_is_pop3();
    block_on(async {
        let mut out = Vec::new();
        if let Some(a) = &src {
            out.push(if pop3 {
                engine::check_pop3(a).await?
            } else {
                engine::check(Side::Source, a).await?
            });
        }
        if let Some(a) = &dst {
            out.push(engine::check(Side::Destination, a).await?);
        }
        Ok(serde_json::to_value(out).unwrap_or_default())
    })?
}

/// Folders, counts and sizes of the source, the folder plan when a destination is given, and
/// an estimate of the copy time from reading a sample.
pub fn analyze(config: &Config) -> Result<Value, Failure> {
    let r = config.resolve()?;
    block_on(async move {
        let out = engine::analyze(
            &r.source,
            r.destination.as_ref(),
            &r.options.plan,
            &r.options.filter,
        )
        .await?;
        Ok(serde_json::to_value(out).unwrap_or_default())
    })?
}

/// Compares source and destination message by message. The result is the library's
/// verification with `"identical"` added.
pub fn verify(config: &Config) -> Result<Value, Failure> {
    let r = config.resolve()?;
    let v = block_on(engine::verify_between(
        &r.source,
        r.destination()?,
        &r.options.plan,
        &r.options.filter,
    ))??;
    let mut json = serde_json::to_value(&v).unwrap_or_default();
    if let Value::Object(m) = &mut json {
        m.insert("identical".into(), v.is_identical().into());
    }
    Ok(json)
}

/// The shape every one-shot entry point shares.
///
/// # Safety
/// As for the entry points: `json_config` NULL or a NUL-terminated string, `out_json` and
/// `err` NULL or writable.
unsafe fn one_shot(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
    op: fn(&Config) -> Result<Value, Failure>,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        guard(err, || {
            out_arg(out_json, "out_json")?;
            let config = Config::parse(str_arg(json_config, "json_config")?)?;
            let result = op(&config)?;
            out_json.write(c_string(result.to_string()));
            Ok(imapmig_status::Ok)
        })
    }
}

/// Connects to the `"source"` and/or `"destination"` of the configuration, logs in and lists
/// folders. On success `*out_json` is a JSON array with one object per server:
/// `{"side","host","port","tls","greeting","logged_in_as","capabilities":[...],"folders",
/// "namespace_prefix","separator","seconds"}`. Blocks (each wait bounded by `timeout_secs`).
///
/// # Safety
/// `json_config`: NUL-terminated UTF-8. `out_json`: writable; free the result with
/// `imapmig_string_free`. `err`: NULL or writable; free the error with `imapmig_error_free`.
#[no_mangle]
pub unsafe extern "C" fn imapmig_check(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe { one_shot(json_config, out_json, err, check) }
}

/// Looks at the `"source"` before a migration: `*out_json` is
/// `{"folders":[{"name","special_use","messages","bytes","largest","in_date_range"}],
/// "messages","bytes","over_size_limit","in_date_range","in_date_range_bytes","plan",
/// "plan_notes":[...],"sample_read_mb_per_s","estimated_seconds"}` (`plan` is the rendered
/// folder plan when a `"destination"` is given, else null; the `in_date_range` counts are null
/// without a date range). Uses the folder and message options. Blocks.
///
/// # Safety
/// As for `imapmig_check`.
#[no_mangle]
pub unsafe extern "C" fn imapmig_analyze(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe { one_shot(json_config, out_json, err, analyze) }
}

/// Compares `"source"` and `"destination"` message by message (content, flags,
/// INTERNALDATE), reading both afresh. `*out_json` is
/// `{"identical":bool,"folders":[{"source","target","source_messages","destination_messages",
/// "matched","extra_on_destination","differences":[...]}]}`. Uses the folder and message
/// options. Blocks.
///
/// # Safety
/// As for `imapmig_check`.
#[no_mangle]
pub unsafe extern "C" fn imapmig_verify(
    json_config: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut imapmig_error,
) -> imapmig_status {
    // SAFETY: forwarded from the caller.
    unsafe { one_shot(json_config, out_json, err, verify) }
}
