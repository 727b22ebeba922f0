//! `libcastellan_p11fault.so`: a PKCS#11 module for tests that forwards every call to a real
//! module and makes the token misbehave on command, as a real HSM does on a bad night.
//!
//! - `CASTELLAN_P11FAULT_MODULE`: the real module (default: SoftHSM2's).
//! - `CASTELLAN_P11FAULT`: a control file, read at every call. Its first line:
//!   - empty or absent: no fault;
//!   - `removed`: the token is out of its slot. `C_GetSlotList(tokenPresent)` lists no slot,
//!     `C_GetTokenInfo` and `C_OpenSession` answer `CKR_TOKEN_NOT_PRESENT`, and every call on
//!     a session `CKR_DEVICE_REMOVED`. When the line changes back, every session of the real
//!     token is closed first (a token that comes back has none);
//!   - `close-sessions`: every session of the real token is closed once (its handles become
//!     invalid: the real module then answers `CKR_SESSION_HANDLE_INVALID` itself);
//!   - `fail 0xRV N [C_Name]`: the next N calls on a session (or only of the function
//!     C_Name) answer the return value RV (for example `0x30`, CKR_DEVICE_ERROR) without
//!     reaching the token;
//!   - `lose 0xRV N [C_Name]`: the same, but each call reaches the token first and takes
//!     effect there: the answer is lost on the way back (a key pair generated, a signature
//!     made, and the caller told it failed).
//!
//! Everything else is the real module's own answer.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use cryptoki_sys::*;

const SOFTHSM2: &str = "/usr/lib/softhsm/libsofthsm2.so";

struct Real {
    _lib: libloading::Library,
    list: CK_FUNCTION_LIST,
}

static REAL: OnceLock<Option<Real>> = OnceLock::new();
static OURS: OnceLock<CK_FUNCTION_LIST> = OnceLock::new();

fn real() -> Option<&'static CK_FUNCTION_LIST> {
    REAL.get_or_init(|| {
        let path =
            std::env::var("CASTELLAN_P11FAULT_MODULE").unwrap_or_else(|_| SOFTHSM2.to_owned());
        // SAFETY: loading a PKCS#11 module runs its initialisers, as any PKCS#11 consumer does.
        let lib = unsafe { libloading::Library::new(path) }.ok()?;
        let list = unsafe {
            let get: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
                lib.get(b"C_GetFunctionList\0").ok()?;
            let mut ptr: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
            if get(&mut ptr) != CKR_OK || ptr.is_null() {
                return None;
            }
            *ptr
        };
        Some(Real { _lib: lib, list })
    })
    .as_ref()
    .map(|r| &r.list)
}

/// The fault in force, as the control file says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Removed,
}

struct Control {
    /// The control file's content when last read.
    seen: String,
    fault: Fault,
}

static CONTROL: Mutex<Control> = Mutex::new(Control {
    seen: String::new(),
    fault: Fault::None,
});
/// Calls left that answer `FAIL_RV`, whether they reach the token first, and which
/// function they are (empty: any call on a session).
static FAIL_LEFT: AtomicU64 = AtomicU64::new(0);
static FAIL_RV: AtomicU64 = AtomicU64::new(0);
static FAIL_AFTER: AtomicBool = AtomicBool::new(false);
static FAIL_FN: Mutex<String> = Mutex::new(String::new());

fn close_all_real_sessions() {
    let Some(r) = real() else { return };
    let (Some(list), Some(close)) = (r.C_GetSlotList, r.C_CloseAllSessions) else {
        return;
    };
    let mut slots = [0 as CK_SLOT_ID; 64];
    let mut n = slots.len() as CK_ULONG;
    // SAFETY: the buffer holds n slots.
    if unsafe { list(CK_TRUE, slots.as_mut_ptr(), &mut n) } == CKR_OK {
        for s in &slots[..(n as usize).min(slots.len())] {
            unsafe { close(*s) };
        }
    }
}

/// Read the control file and apply what changed; the fault now in force.
fn fault() -> Fault {
    let text = std::env::var_os("CASTELLAN_P11FAULT")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    let mut c = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
    if line != c.seen {
        let was = c.fault;
        c.fault = if line == "removed" {
            Fault::Removed
        } else {
            Fault::None
        };
        if line == "close-sessions" || (was == Fault::Removed && c.fault == Fault::None) {
            close_all_real_sessions();
        }
        let mut words = line.split_whitespace();
        let mode = words.next().unwrap_or("");
        if mode == "fail" || mode == "lose" {
            let rv = words
                .next()
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok());
            let n = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
            if let Some(rv) = rv {
                *FAIL_FN.lock().unwrap_or_else(|p| p.into_inner()) =
                    words.next().unwrap_or("").to_owned();
                FAIL_AFTER.store(mode == "lose", Ordering::SeqCst);
                FAIL_RV.store(rv, Ordering::SeqCst);
                FAIL_LEFT.store(n, Ordering::SeqCst);
            }
        }
        c.seen = line;
    }
    c.fault
}

/// What happens to a call on a session instead of the real answer.
enum Injected {
    /// Answer this without reaching the token.
    Instead(CK_RV),
    /// Reach the token, then answer this.
    After(CK_RV),
}

fn session_fault(name: &str) -> Option<Injected> {
    if fault() == Fault::Removed {
        return Some(Injected::Instead(CKR_DEVICE_REMOVED));
    }
    {
        let only = FAIL_FN.lock().unwrap_or_else(|p| p.into_inner());
        if !only.is_empty() && *only != name {
            return None;
        }
    }
    FAIL_LEFT
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .ok()
        .map(|_| {
            let rv = FAIL_RV.load(Ordering::SeqCst) as CK_RV;
            if FAIL_AFTER.load(Ordering::SeqCst) {
                Injected::After(rv)
            } else {
                Injected::Instead(rv)
            }
        })
}

/// A wrapper for a call on a session: the fault's answer, or the real module's.
macro_rules! on_session {
    ($name:ident ( $($arg:ident : $ty:ty),* )) => {
        unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            let injected = session_fault(stringify!($name));
            if let Some(Injected::Instead(rv)) = injected {
                return rv;
            }
            let rv = match real().and_then(|r| r.$name) {
                // SAFETY: the caller's arguments, passed on unchanged.
                Some(f) => unsafe { f($($arg),*) },
                None => CKR_FUNCTION_NOT_SUPPORTED,
            };
            match injected {
                Some(Injected::After(lost)) => lost,
                _ => rv,
            }
        }
    };
}

on_session!(C_Login(s: CK_SESSION_HANDLE, u: CK_USER_TYPE, pin: *mut CK_UTF8CHAR, len: CK_ULONG));
on_session!(C_Logout(s: CK_SESSION_HANDLE));
on_session!(C_GetSessionInfo(s: CK_SESSION_HANDLE, info: *mut CK_SESSION_INFO));
on_session!(C_FindObjectsInit(s: CK_SESSION_HANDLE, t: *mut CK_ATTRIBUTE, n: CK_ULONG));
on_session!(C_FindObjects(s: CK_SESSION_HANDLE, o: *mut CK_OBJECT_HANDLE, max: CK_ULONG, n: *mut CK_ULONG));
on_session!(C_FindObjectsFinal(s: CK_SESSION_HANDLE));
on_session!(C_GetAttributeValue(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: *mut CK_ATTRIBUTE, n: CK_ULONG));
on_session!(C_SetAttributeValue(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: *mut CK_ATTRIBUTE, n: CK_ULONG));
on_session!(C_SignInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE));
on_session!(C_Sign(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG, sig: *mut CK_BYTE, sl: *mut CK_ULONG));
on_session!(C_SignUpdate(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, dl: CK_ULONG));
on_session!(C_SignFinal(s: CK_SESSION_HANDLE, sig: *mut CK_BYTE, sl: *mut CK_ULONG));
on_session!(C_DecryptInit(s: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, k: CK_OBJECT_HANDLE));
on_session!(C_Decrypt(s: CK_SESSION_HANDLE, c: *mut CK_BYTE, cl: CK_ULONG, d: *mut CK_BYTE, dl: *mut CK_ULONG));
on_session!(C_GenerateKeyPair(
    s: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    pubt: *mut CK_ATTRIBUTE,
    pubn: CK_ULONG,
    privt: *mut CK_ATTRIBUTE,
    privn: CK_ULONG,
    pubk: *mut CK_OBJECT_HANDLE,
    privk: *mut CK_OBJECT_HANDLE
));
on_session!(C_GenerateRandom(s: CK_SESSION_HANDLE, d: *mut CK_BYTE, n: CK_ULONG));

unsafe extern "C" fn C_GetSlotList(
    present: CK_BBOOL,
    slots: *mut CK_SLOT_ID,
    n: *mut CK_ULONG,
) -> CK_RV {
    if present == CK_TRUE && fault() == Fault::Removed {
        if n.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        // SAFETY: the caller gave a count to write.
        unsafe { *n = 0 };
        return CKR_OK;
    }
    match real().and_then(|r| r.C_GetSlotList) {
        // SAFETY: the caller's arguments, passed on unchanged.
        Some(f) => unsafe { f(present, slots, n) },
        None => CKR_FUNCTION_NOT_SUPPORTED,
    }
}

unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    if fault() == Fault::Removed {
        return CKR_TOKEN_NOT_PRESENT;
    }
    match real().and_then(|r| r.C_GetTokenInfo) {
        // SAFETY: the caller's arguments, passed on unchanged.
        Some(f) => unsafe { f(slot, info) },
        None => CKR_FUNCTION_NOT_SUPPORTED,
    }
}

unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    app: *mut std::os::raw::c_void,
    notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    if fault() == Fault::Removed {
        return CKR_TOKEN_NOT_PRESENT;
    }
    match real().and_then(|r| r.C_OpenSession) {
        // SAFETY: the caller's arguments, passed on unchanged.
        Some(f) => unsafe { f(slot, flags, app, notify, session) },
        None => CKR_FUNCTION_NOT_SUPPORTED,
    }
}

/// The module's one exported entry point: the real module's function list with the
/// calls above put in.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(out: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV {
    if out.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let Some(r) = real() else {
        return CKR_GENERAL_ERROR;
    };
    let list = OURS.get_or_init(|| {
        let mut l = *r;
        l.C_GetFunctionList = Some(C_GetFunctionList);
        l.C_GetSlotList = Some(C_GetSlotList);
        l.C_GetTokenInfo = Some(C_GetTokenInfo);
        l.C_OpenSession = Some(C_OpenSession);
        l.C_Login = Some(C_Login);
        l.C_Logout = Some(C_Logout);
        l.C_GetSessionInfo = Some(C_GetSessionInfo);
        l.C_FindObjectsInit = Some(C_FindObjectsInit);
        l.C_FindObjects = Some(C_FindObjects);
        l.C_FindObjectsFinal = Some(C_FindObjectsFinal);
        l.C_GetAttributeValue = Some(C_GetAttributeValue);
        l.C_SetAttributeValue = Some(C_SetAttributeValue);
        l.C_SignInit = Some(C_SignInit);
        l.C_Sign = Some(C_Sign);
        l.C_SignUpdate = Some(C_SignUpdate);
        l.C_SignFinal = Some(C_SignFinal);
        l.C_DecryptInit = Some(C_DecryptInit);
        l.C_Decrypt = Some(C_Decrypt);
        l.C_GenerateKeyPair = Some(C_GenerateKeyPair);
        l.C_GenerateRandom = Some(C_GenerateRandom);
        l
    });
    // SAFETY: `out` is non-null; the list lives as long as the module.
    unsafe { *out = list as *const CK_FUNCTION_LIST as CK_FUNCTION_LIST_PTR };
    CKR_OK
}
