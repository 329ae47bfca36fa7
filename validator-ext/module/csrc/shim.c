/*
 * The few PostgreSQL structures that pgrx does not bind (Port, HbaLine, libpq/oauth.h), read here with the server's
 * own headers so that the C compiler, not a hand-copied Rust layout, decides every offset.
 *
 * The sizes of the validator ABI structs that Rust declares are checked against the real header at compile time:
 * a mismatch fails the build of this file.
 */
#include "postgres.h"
#include "libpq/hba.h"
#include "libpq/libpq-be.h"
#include "libpq/oauth.h"
#include "miscadmin.h"

StaticAssertDecl(sizeof(ValidatorModuleState) == PGRATOR_SIZEOF_STATE, "ValidatorModuleState differs from the Rust declaration");
StaticAssertDecl(sizeof(ValidatorModuleResult) == PGRATOR_SIZEOF_RESULT, "ValidatorModuleResult differs from the Rust declaration");
StaticAssertDecl(sizeof(OAuthValidatorCallbacks) == PGRATOR_SIZEOF_CALLBACKS, "OAuthValidatorCallbacks differs from the Rust declaration");
StaticAssertDecl(offsetof(ValidatorModuleResult, authn_id) == PGRATOR_OFFSETOF_AUTHN_ID, "authn_id offset differs");
StaticAssertDecl(offsetof(OAuthValidatorCallbacks, validate_cb) == PGRATOR_OFFSETOF_VALIDATE_CB, "validate_cb offset differs");
StaticAssertDecl(PG_OAUTH_VALIDATOR_MAGIC == PGRATOR_OAUTH_VALIDATOR_MAGIC, "validator magic differs");

static const HbaLine *
current_hba(void)
{
	return (MyProcPort != NULL) ? MyProcPort->hba : NULL;
}

/* The `issuer` option of the HBA line this connection matched, or NULL. */
const char *
pgrator_hba_oauth_issuer(void)
{
	const HbaLine *hba = current_hba();

	return hba ? hba->oauth_issuer : NULL;
}

/* The `scope` option of the HBA line this connection matched, or NULL. */
const char *
pgrator_hba_oauth_scope(void)
{
	const HbaLine *hba = current_hba();

	return hba ? hba->oauth_scope : NULL;
}

/* The file and line of the HBA entry, for log lines that tell a DBA which rule was used. */
int
pgrator_hba_line_number(void)
{
	const HbaLine *hba = current_hba();

	return hba ? hba->linenumber : 0;
}
