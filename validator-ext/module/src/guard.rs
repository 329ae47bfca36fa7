//! The personal-session guard: a ProcessUtility hook that describes each utility statement to the pure rule in
//! `pgrator_token::session_guard` and refuses what it refuses (with an ERROR, as any permission failure). Installed
//! in every backend that loads the module (preloaded: all of them).

use std::ffi::CStr;

use pgrator_token::session_guard::{self, Grantee, Session, Statement};
use pgrx::pg_sys;

/// The hook that was there before ours (another extension's, or none): called for everything we let through.
static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// Installs the hook; called once per process from `_PG_init`.
pub fn install() {
    // SAFETY: _PG_init runs once per process on PostgreSQL's main thread, before any statement; the chain keeps
    // the previous hook.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)] // PostgreSQL's hook signature
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: PostgreSQL hands a valid PlannedStmt whose utilityStmt is a valid parse node for this call.
    let node = unsafe { pstmt.as_ref() }.map_or(std::ptr::null_mut(), |p| p.utilityStmt);
    // SAFETY: `node` is NULL or a valid parse node that lives for this call.
    let statement = unsafe { describe(node) };
    if statement != Statement::Other {
        // SAFETY: called in a backend with a session (utility statements only run there).
        let session_user = unsafe { role_name(pg_sys::GetSessionUserId()) };
        // SAFETY: as above; superuser() reads the current user's catalog entry.
        let superuser = unsafe { pg_sys::superuser() };
        if let Err(refusal) = session_guard::check(
            &statement,
            Session {
                session_user: &session_user,
                superuser,
            },
        ) {
            pgrx::ereport!(
                pgrx::PgLogLevel::ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                refusal.to_string()
            );
        }
    }
    // SAFETY: the same arguments PostgreSQL gave us, passed on unchanged to the next hook or the standard code.
    unsafe {
        match PREVIOUS {
            Some(previous) => previous(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

/// # Safety
/// `oid` is a role's oid, read in a backend with catalog access.
unsafe fn role_name(oid: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId with noerr returns NULL or a palloc'd C string.
    let name = unsafe { pg_sys::GetUserNameFromId(oid, true) };
    // SAFETY: NULL or a valid C string, as said above.
    unsafe { str_of(name) }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn str_of(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: not NULL, and NUL-terminated per the contract above.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The DefElems of a List, as (name, arg) pairs.
///
/// # Safety
/// `list` is NULL or a valid List of DefElem nodes.
unsafe fn def_elems(list: *mut pg_sys::List) -> Vec<(String, *mut pg_sys::Node)> {
    // SAFETY: per the contract above.
    let list = unsafe { pgrx::PgList::<pg_sys::DefElem>::from_pg(list) };
    list.iter_ptr()
        // SAFETY: every element of the list is a valid DefElem.
        .filter_map(|d| unsafe { d.as_ref() })
        // SAFETY: defname is NULL or a C string owned by the parse tree.
        .map(|d| (unsafe { str_of(d.defname) }, d.arg))
        .collect()
}

/// True when a DefElem's argument is absent (a bare flag) or a true Boolean / non-zero Integer.
///
/// # Safety
/// `arg` is NULL or a valid parse node.
unsafe fn is_true(arg: *mut pg_sys::Node) -> bool {
    if arg.is_null() {
        return true;
    }
    // SAFETY: a valid node; its tag says which struct it is.
    unsafe {
        match (*arg).type_ {
            pg_sys::NodeTag::T_Boolean => (*(arg as *mut pg_sys::Boolean)).boolval,
            pg_sys::NodeTag::T_Integer => (*(arg as *mut pg_sys::Integer)).ival != 0,
            _ => false,
        }
    }
}

/// What the statement is, for the guard.
///
/// # Safety
/// `node` is NULL or a valid utility parse node.
unsafe fn describe(node: *mut pg_sys::Node) -> Statement {
    if node.is_null() {
        return Statement::Other;
    }
    // SAFETY: a valid node; each arm casts to the struct its tag names and reads lists through def_elems.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_CreateRoleStmt => {
                let s = &*(node as *mut pg_sys::CreateRoleStmt);
                if def_elems(s.options).iter().any(|(n, _)| n == "password") {
                    Statement::SetsPassword
                } else {
                    Statement::CreatesRole
                }
            }
            pg_sys::NodeTag::T_AlterRoleStmt => {
                let s = &*(node as *mut pg_sys::AlterRoleStmt);
                let options = def_elems(s.options);
                if options.iter().any(|(n, _)| n == "password") {
                    Statement::SetsPassword
                } else if options.is_empty() {
                    Statement::Other
                } else {
                    Statement::ChangesRoleAttributes
                }
            }
            pg_sys::NodeTag::T_GrantRoleStmt => Statement::RoleMembership,
            pg_sys::NodeTag::T_AlterDefaultPrivilegesStmt => Statement::DefaultPrivileges,
            pg_sys::NodeTag::T_CreateFunctionStmt => {
                let s = &*(node as *mut pg_sys::CreateFunctionStmt);
                security_definer(s.options)
            }
            pg_sys::NodeTag::T_AlterFunctionStmt => {
                let s = &*(node as *mut pg_sys::AlterFunctionStmt);
                security_definer(s.actions)
            }
            pg_sys::NodeTag::T_GrantStmt => {
                let s = &*(node as *mut pg_sys::GrantStmt);
                if !s.is_grant {
                    return Statement::Other;
                }
                let grantees = pgrx::PgList::<pg_sys::RoleSpec>::from_pg(s.grantees);
                Statement::GrantPrivileges(
                    grantees
                        .iter_ptr()
                        .filter_map(|r| r.as_ref())
                        .map(|r| match r.roletype {
                            pg_sys::RoleSpecType::ROLESPEC_PUBLIC => Grantee::Public,
                            pg_sys::RoleSpecType::ROLESPEC_CSTRING => {
                                Grantee::Role(str_of(r.rolename))
                            }
                            _ => Grantee::Own,
                        })
                        .collect(),
                )
            }
            pg_sys::NodeTag::T_VariableSetStmt => {
                let s = &*(node as *mut pg_sys::VariableSetStmt);
                if str_of(s.name) == "session_authorization"
                    && s.kind == pg_sys::VariableSetKind::VAR_SET_VALUE
                {
                    Statement::SessionAuthorization
                } else {
                    Statement::Other
                }
            }
            _ => Statement::Other,
        }
    }
}

/// SECURITY DEFINER among a function's options or actions.
///
/// # Safety
/// `list` is NULL or a valid List of DefElem nodes.
unsafe fn security_definer(list: *mut pg_sys::List) -> Statement {
    // SAFETY: per the contract above.
    let options = unsafe { def_elems(list) };
    if options
        .iter()
        // SAFETY: each arg is NULL or a valid node of the parse tree.
        .any(|(n, arg)| n == "security" && unsafe { is_true(*arg) })
    {
        Statement::SecurityDefiner
    } else {
        Statement::Other
    }
}
